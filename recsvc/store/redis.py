"""The Redis store (`redis://HOST:PORT/DB?prefix=recsvc`, or on a Redis Cluster
`redis+cluster://HOST:PORT[,HOST:PORT...]?prefix=recsvc`; `recsvc.store.redis_client`): model
versions and live records (NPS answers, order lines) in Redis, shared by every service machine;
each machine caches the active version's files locally.

Key layout (`{prefix}` is the key prefix, default `recsvc`; a `{...}` inside a key is a Redis
Cluster hash tag: keys with the same tag live in the same slot):

    {prefix}:active                               string: the active version, the one pointer
    {prefix}:versions                             hash: version -> {created_at, ndcg}, complete ones
    {prefix}:events                               pub/sub channel: {"event": "activated", ...}
    {prefix}:model:{v:<version>}:manifest         the version's manifest.json, byte for byte
    {prefix}:model:{v:<version>}:files            hash: file name -> number of chunks
    {prefix}:model:{v:<version>}:file:<name>:<i>  chunk i (8 MiB) of one artifact file
    {prefix}:{c:<customer_id>}:nps                list: the customer's live responses, oldest first
    {prefix}:{c:<customer_id>}:nps_ids            set: their response ids (idempotency)
    {prefix}:live:changes                         pub/sub channel: customers whose live records
                                                  changed, erasures (`recsvc.store.redis_mirror`)
    {prefix}:live:customers                       set: customers with live responses
    {prefix}:live:stream                          stream: live responses in arrival order
    {prefix}:{live}:archive                       list: the archive's part keys, oldest first
    {prefix}:{live}:archive:<stamp>-<i>           string: compacted responses, zlib(JSON lines)
    {prefix}:{c:<customer_id>}:orders             list: the customer's live order lines (revisions)
    {prefix}:{c:<customer_id>}:orders_ids         set: their revision keys (idempotency)
    {prefix}:live:orders:customers                set: customers with live order lines
    {prefix}:live:orders:stream                   stream: live order lines in arrival order
    {prefix}:{live}:orders:archive                list: the order archive's part keys
    {prefix}:{live}:orders:archive:<stamp>-<i>    string: compacted order lines, zlib(JSON lines)
    {prefix}:{privacy}:log                        list: the erasure log (no personal data)
    {prefix}:{privacy}:latest                     hash: customer hash -> their latest erasure
    {prefix}:{privacy}:revision                   counter: moves with every erasure log entry
    {prefix}:{memberships}:log                    list: the membership journal's entries
    {prefix}:{memberships}:part:<seq>             string: an entry's changes, zlib(JSON lines)
    {prefix}:{outbox}:<destination>:events        list: webhook events waiting, oldest first
    {prefix}:{outbox}:<destination>:state         hash: the destination's delivery state
    {prefix}:{outbox}:destinations                set: destinations with an outbox
    {prefix}:{live}:exposures                     list: the experiments' exposure log (JSON lines)
    {prefix}:{surveys}:asked, :declined           hashes: customer -> latest send, latest decline
    {prefix}:{surveys}:sent_per_day, :revision    sends per UTC day; moves with every new event
    {prefix}:{surveys}:day:<YYYY-MM-DD>           set: the day's event keys (`store.surveys`)
    {prefix}:deliver-lock                         the deliverer's lock (`recsvc deliver`)
    {prefix}:train-lock                           the training lock (`store.locks`)
    {prefix}:runs                                 hash: run id -> run record (`store.runs`)
    {prefix}:console-sessions:<session id>        a console sign-in (`recsvc.api.console`)

Why this shape. The prefix lets several shops or environments share one Redis and lets tests clean
up after themselves. All keys of one model version carry the hash tag `{v:<version>}`, so a Redis
Cluster keeps a version in one slot and the step that seals an upload (one MULTI over the version's
keys) is legal there. A customer's live keys share `{c:<customer_id>}`, so the Lua script that
checks the key set and appends to the list in one atomic step also runs on a cluster, and a
request reads a customer's answers and order lines from one node. The global keys (pointer,
versions, customer sets, streams, locks, run log) are single keys, each touched by single commands.

On a Redis Cluster. Every MULTI/EXEC (with its WATCH) and every Lua script touches the keys of one
hash tag, so of one slot: a version's seal `{v:...}`, a customer's scripts `{c:...}`, the archives'
parts and lists `{live}`, the erasure log `{privacy}`, the membership journal `{memberships}`, the
outbox `{outbox}`, the survey log `{surveys}`; a command naming several keys (MGET, DEL,
UNLINK) names keys of one tag as well.
Pipelines that are not transactions (an intake batch, an upload, `live_of`) may span slots: the
cluster client sends each node its part, so they take a round trip per node rather than one, and
Lua scripts in them go whole (EVAL), as the cluster client's pipeline sends no EVALSHA. A
`{prefix}:events` message is a classic PUBLISH, which the cluster passes to every node, so a
subscriber on any node hears it; it is sent as a command of its own, as the cluster client's
pipeline refuses PUBLISH. A cluster has only database 0; the prefix still separates shops.

Publishing: every file is uploaded in chunks (with an expiry, so an upload that dies half-way cleans
itself up), checked against the manifest's sizes and SHA-256, sealed (expiry removed), registered in
`{prefix}:versions`, and only then does the pointer switch with one SET and a message goes out on
`{prefix}:events`. A reader follows the pointer, so it only ever reaches complete versions.

Loading: the active version is downloaded once per machine into `<cache_dir>/<prefix>/<version>/`
(cache_dir from the URL's `cache_dir` parameter, else `RECSVC_CACHE_DIR`, else `./var/cache`),
checked, renamed into place atomically under a file lock (workers of one machine download it once
and share it), and memory-mapped from there.

Live intake (each kind alike; `RedisLiveLog.add`): one pipeline sends the idempotent add per record
(by its key: a response id, an order line's revision), the customer into the kind's customer set,
and an XADD to the kind's stream. The stream gets every attempt, even a repeated key: were a first
attempt cut off between the two steps, its retry still reaches the nightly run. Readers of the
stream drop repeats (first occurrence wins).

Compaction (`compact`, called by the training run for the records the active version holds):
(1) the records' JSON, exactly as stored (the stream's first copy of each key, plus any list entry
the stream lacks), is written zlib-compressed into new archive parts, listed in the kind's archive
list by the same MULTI (one hash tag, so legal on a cluster); (2) per customer, a Lua script on the
customer's two keys removes exactly those list entries and their keys (a list or set left empty
disappears), customers left without live records leave the customer set (put back if one arrived
meanwhile), and the stream entries of those keys are deleted (XDEL). Killed between the steps, a
record is in the archive and still live: readers keep the first copy of a key, and the next
compaction moves it again. The archive only grows; only the training run reads it.

Durability: an acknowledged write is in the server's memory; it survives a server crash only as
far as the server's AOF setting allows (docker-compose runs `--appendonly yes`; with
`--appendfsync always` nothing acknowledged is lost, with the default `everysec` up to a second).
A Redis that cannot be reached, times out, is loading or refuses writes is `StoreUnavailable`, and
so is a cluster that is down, has a slot no node serves, or is moving slots (a failover, a
resharding); the client reconnects by itself on the next call once the server is back (a cluster
client fetches the slot map again).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import msgspec
import redis
from redis.exceptions import CrossSlotTransactionError

from recsvc.domain.live import ANSWERS, ORDER_LINES, LiveActivity, LiveOrderLine, LiveResponse
from recsvc.domain.privacy import customer_hash
from recsvc.errors import (
    ArtifactError,
    ConfigError,
    InvalidRequest,
    NotFoundError,
    StoreUnavailable,
    shown,
)
from recsvc.store.base import VersionInfo
from recsvc.store.durable import exclusive_lock, fsync_dir
from recsvc.store.erasures import RedisErasureLog, parse_time
from recsvc.store.exposures import RedisExposureLog
from recsvc.store.locks import (
    DEFAULT_LOCK_TTL_SECONDS,
    DELIVERY_LOCK_TTL_SECONDS,
    RedisTrainingLock,
    TrainingLock,
)
from recsvc.store.memberships import RedisMembershipJournal
from recsvc.store.outbox import RedisOutbox
from recsvc.store.redis_changes import LiveChanges
from recsvc.store.redis_client import UNREACHABLE_ERRORS, RedisUrl
from recsvc.store.redis_live import LiveKeys, LiveScripts, RedisLiveLog, as_bytes, as_text
from recsvc.store.redis_mirror import RedisLiveMirror
from recsvc.store.runs import RedisRunLog, RunLog
from recsvc.store.surveys import RedisSurveyLog
from recsvc.version.artifacts import (
    MANIFEST,
    LoadedModel,
    Manifest,
    load_model,
    read_manifest,
)
from recsvc.version.opened import ActiveModel, open_checked

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger("recsvc.store")
T = TypeVar("T")

DEFAULT_PREFIX = "recsvc"
CHUNK_SIZE = 8 << 20
# An upload not sealed within this time (the publisher died) expires by itself.
UPLOAD_TTL_SECONDS = 24 * 3600
_PIPELINE_BYTES = 64 << 20  # send an upload's pipeline whenever this much is queued
# Redis answers these when it is up but cannot take writes right now: the same as unreachable.
_REFUSAL_ERRORS = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.MasterDownError,
)
_REFUSALS = ("MISCONF", "NOREPLICAS")


class _VersionRecord(msgspec.Struct, frozen=True):
    created_at: str
    ndcg: float | None = None


class _Event(msgspec.Struct, frozen=True):
    event: str
    version: str


_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(_VersionRecord)
_manifest_decoder = msgspec.json.Decoder(Manifest)


def _plain_name(name: str, what: str) -> str:
    """Version and file names become key parts and local paths: no separators, braces or dots first."""
    if not name or name.startswith(".") or any(ch in name for ch in "/\\{}\0\n"):
        raise ArtifactError(f"{what} {name!r} is not a plain name")
    return name


class RedisStore:
    """The `Store` on a Redis server or a Redis Cluster; thread-safe (one client with a connection
    pool per server)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        cache_dir: Path | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        target = RedisUrl.parse(url)
        own = target.own
        self.prefix = prefix if prefix is not None else own.get("prefix", DEFAULT_PREFIX)
        if not self.prefix or any(ch in self.prefix for ch in "{}*?[] \t\n"):
            raise ConfigError(
                f"store URL {target.url!r}: key prefix {self.prefix!r} must be non-empty, "
                "without braces, glob characters or spaces"
            )
        # The URL's own parameter, then the caller's, then RECSVC_CACHE_DIR, then ./var/cache.
        chosen = (
            own.get("cache_dir")
            or (str(cache_dir) if cache_dir is not None else None)
            or os.environ.get("RECSVC_CACHE_DIR")
            or "./var/cache"
        )
        self.cache_dir = Path(chosen) / self.prefix
        self.chunk_size = chunk_size
        self.url = target.url
        self.cluster = target.cluster
        self._target = target
        self._client = target.connect()
        scripts = LiveScripts(self._client, whole=self.cluster)
        p = self.prefix
        self._changes = LiveChanges(self._client, f"{p}:live:changes")
        self._mirror: RedisLiveMirror | None = None
        self.answers: RedisLiveLog[LiveResponse] = RedisLiveLog(
            ANSWERS,
            self._client,
            LiveKeys(
                p,
                "nps",
                f"{p}:live:customers",
                f"{p}:live:stream",
                f"{p}:{{live}}:archive",
                b"response",
            ),
            scripts,
            self._reachable,
            self._changes,
        )
        self._erasures = RedisErasureLog(self._client, p, self._reachable, self._changes)
        self._memberships = RedisMembershipJournal(
            self._client,
            p,
            self._reachable,
            self.active_version,
            self.version_path,
            self._erasures.suppression,
        )
        self._outbox = RedisOutbox(self._client, p, self._reachable)
        self.exposures = RedisExposureLog(self._client, p, self._reachable)
        self._surveys = RedisSurveyLog(self._client, p, self._reachable)
        self.orders: RedisLiveLog[LiveOrderLine] = RedisLiveLog(
            ORDER_LINES,
            self._client,
            LiveKeys(
                p,
                "orders",
                f"{p}:live:orders:customers",
                f"{p}:live:orders:stream",
                f"{p}:{{live}}:orders:archive",
                b"line",
            ),
            scripts,
            self._reachable,
            self._changes,
        )

    @property
    def erasures(self) -> RedisErasureLog:
        return self._erasures

    @property
    def memberships(self) -> RedisMembershipJournal:
        return self._memberships

    @property
    def surveys(self) -> RedisSurveyLog:
        return self._surveys

    def follow_live(self) -> None:
        """Keep every customer's live records in memory (`recsvc.store.redis_mirror`): from the
        moment it is in sync, `live_of` reads no Redis."""
        if self._mirror is not None:
            return
        self._mirror = RedisLiveMirror(
            self._client,
            self._changes.channel,
            self.answers,
            self.orders,
            self._erasures.suppression,
        )
        self._changes.mirror = self._mirror
        self._mirror.start()

    @property
    def live_mirror(self) -> RedisLiveMirror | None:
        return self._mirror

    def live_of(self, customer_id: str) -> LiveActivity:
        """The customer's live answers and order lines and when they were erased: from the mirror
        when following and in sync, otherwise in one round trip."""
        if self._mirror is not None and (held := self._mirror.live_of(customer_id)) is not None:
            return held
        with self._reachable("reading live records"):
            pipe = self._client.pipeline(transaction=False)
            pipe.lrange(self.answers.keys.of_customer(customer_id)[0], 0, -1)
            pipe.lrange(self.orders.keys.of_customer(customer_id)[0], 0, -1)
            pipe.hget(self.erasures.latest_key, customer_hash(customer_id))
            answers, orders, erased = pipe.execute()
        return LiveActivity(
            self.answers.decode_all(answers),
            self.orders.decode_all(orders),
            erased_at=parse_time(erased),
        )

    # --- keys -------------------------------------------------------------------------------
    @property
    def _active_key(self) -> str:
        return f"{self.prefix}:active"

    @property
    def _versions_key(self) -> str:
        return f"{self.prefix}:versions"

    @property
    def events_channel(self) -> str:
        return f"{self.prefix}:events"

    def _model_key(self, version: str, part: str) -> str:
        return f"{self.prefix}:model:{{v:{version}}}:{part}"

    def _chunk_key(self, version: str, name: str, index: int) -> str:
        return self._model_key(version, f"file:{name}:{index}")

    @contextmanager
    def _reachable(self, doing: str) -> Iterator[None]:
        try:
            yield
        except CrossSlotTransactionError:
            raise  # a transaction over keys of two cluster slots: a key layout bug, not an outage
        except _REFUSAL_ERRORS as exc:  # before UNREACHABLE_ERRORS: MASTERDOWN is a ClusterError
            raise StoreUnavailable(f"Redis at {self.url} refused {doing}: {exc}") from exc
        except UNREACHABLE_ERRORS as exc:
            raise StoreUnavailable(f"Redis at {self.url} unreachable while {doing}: {exc}") from exc
        except redis.ResponseError as exc:
            if str(exc).startswith(_REFUSALS):
                raise StoreUnavailable(f"Redis at {self.url} refused {doing}: {exc}") from exc
            raise

    # --- model versions ---------------------------------------------------------------------
    def active_version(self) -> str | None:
        with self._reachable("reading the active version"):
            raw = self._client.get(self._active_key)
        return None if raw is None else as_text(raw)

    def list_versions(self) -> list[VersionInfo]:
        with self._reachable("listing versions"):
            records = self._client.hgetall(self._versions_key)
            active = self.active_version()
        infos = []
        for raw_name, raw_record in sorted(records.items()):
            name = as_text(raw_name)
            record = _record_decoder.decode(raw_record)
            infos.append(VersionInfo(name, record.created_at, name == active, record.ndcg))
        return infos

    def _is_stored(self, version: str) -> bool:
        with self._reachable("looking up a version"):
            return bool(self._client.hexists(self._versions_key, version))

    def manifest(self, version: str) -> Manifest:
        if not self._is_stored(version):
            raise NotFoundError(f"no model version {shown(version)} in this store")
        with self._reachable("reading a manifest"):
            raw = self._client.get(self._model_key(version, "manifest"))
        if raw is None:
            raise NotFoundError(f"model version {version!r} lost its manifest in Redis")
        return _manifest_decoder.decode(raw)

    def publish(self, artifact: Path, *, activate: bool = True, keep: int = 3) -> str:
        manifest = read_manifest(artifact)
        _plain_name(manifest.version, "version")
        if not self._is_stored(manifest.version):
            self._upload(artifact)
            self._register(manifest)
        if activate:
            self.activate(manifest.version)
        self.prune(keep)
        return manifest.version

    def _upload(self, artifact: Path) -> Manifest:
        """The first step of a publish: every file's chunks (expiring), its chunk counts and the
        manifest, checked against the manifest. Nothing lists or points at them yet."""
        manifest = read_manifest(artifact)
        version = _plain_name(manifest.version, "version")
        counts: dict[str, int] = {}
        with self._reachable(f"uploading version {version}"):
            pipe = self._client.pipeline(transaction=False)
            queued = 0
            for name, entry in manifest.files.items():
                _plain_name(name, f"{artifact}: file")
                digest, size, index = hashlib.sha256(), 0, 0
                with (artifact / name).open("rb") as handle:
                    while chunk := handle.read(self.chunk_size):
                        digest.update(chunk)
                        size += len(chunk)
                        pipe.set(
                            self._chunk_key(version, name, index), chunk, ex=UPLOAD_TTL_SECONDS
                        )
                        index += 1
                        queued += len(chunk)
                        if queued >= _PIPELINE_BYTES:
                            pipe.execute()
                            queued = 0
                if size != entry.size or digest.hexdigest() != entry.sha256:
                    raise ArtifactError(f"{artifact / name}: differs from the manifest")
                counts[name] = index
            files_key = self._model_key(version, "files")
            pipe.delete(files_key)
            if counts:
                pipe.hset(files_key, mapping=counts)  # type: ignore[arg-type]
                pipe.expire(files_key, UPLOAD_TTL_SECONDS)
            pipe.set(
                self._model_key(version, "manifest"),
                (artifact / MANIFEST).read_bytes(),
                ex=UPLOAD_TTL_SECONDS,
            )
            pipe.execute()
        return manifest

    def _version_keys(self, version: str, counts: dict[str, int]) -> list[str]:
        keys = [self._model_key(version, "manifest"), self._model_key(version, "files")]
        for name, n_chunks in counts.items():
            keys.extend(self._chunk_key(version, name, i) for i in range(n_chunks))
        return keys

    def _chunk_counts(self, version: str) -> dict[str, int]:
        raw = self._client.hgetall(self._model_key(version, "files"))
        return {as_text(name): int(n) for name, n in raw.items()}

    def _register(self, manifest: Manifest) -> None:
        """Seal an upload (drop the expiry of all its keys at once) and list the version."""
        version = manifest.version
        with self._reachable(f"registering version {version}"):
            counts = self._chunk_counts(version)
            keys = self._version_keys(version, counts)
            if not manifest.files:
                keys.remove(self._model_key(version, "files"))  # no files: no chunk-count hash
            pipe = self._client.pipeline(transaction=True)  # one slot: the version's hash tag
            for key in keys:
                pipe.persist(key)  # 1 for a key uploaded (with an expiry) and still there
            sealed = pipe.execute()
            if not all(sealed) or set(counts) != set(manifest.files):
                for key in keys:  # let what is there expire after all
                    pipe.expire(key, UPLOAD_TTL_SECONDS)
                pipe.execute()
                raise ArtifactError(f"the upload of version {version} is incomplete in Redis")
            record = _VersionRecord(manifest.created_at, manifest.metrics.get("ndcg"))
            self._client.hset(self._versions_key, version, _encoder.encode(record))

    def activate(self, version: str) -> None:
        # Refuse to point at a version that would not serve: the next worker to start would fail.
        self.open(version)
        self._memberships.reconcile()  # a switch a crash left out of the journal, first
        with self._reachable(f"activating version {version}"):
            self._client.set(self._active_key, version)
            self._client.publish(self.events_channel, _encoder.encode(_Event("activated", version)))
        self._memberships.reconcile()  # who entered and left each segment (a crash: next read)

    def prune(self, keep: int) -> list[str]:
        with self._reachable("pruning versions"):
            versions = sorted(as_text(v) for v in self._client.hkeys(self._versions_key))
            active = self.active_version()
            removable = [v for v in versions[: max(len(versions) - keep, 0)] if v != active]
        for version in removable:
            self._remove(version)
        return removable

    def remove(self, version: str) -> None:
        if version == self.active_version():
            raise InvalidRequest(f"version {shown(version)} is active: activate another first")
        if not self._is_stored(version):
            raise NotFoundError(f"no model version {shown(version)} in this store")
        self._remove(version)

    def _remove(self, version: str) -> None:
        with self._reachable(f"removing version {version}"):
            self._client.hdel(self._versions_key, version)  # unlisted first, then deleted
            keys = self._version_keys(version, self._chunk_counts(version))
            for start in range(0, len(keys), 500):
                self._client.unlink(*keys[start : start + 500])
        # This machine's copy (mapped files stay valid until unmapped); other machines drop
        # theirs when they next load a version (`_sweep_cache`).
        shutil.rmtree(self.cache_dir / version, ignore_errors=True)

    def open(self, version: str) -> ActiveModel:
        """The version opened as a worker serves it, from this machine's cached copy, every file
        checked against the manifest; a damaged copy is fetched again from Redis once."""
        if not self._is_stored(version):
            raise NotFoundError(f"no model version {shown(version)} in this store")
        return self._from_cache(version, open_checked)

    def load_active(self) -> LoadedModel | None:
        error: Exception | None = None
        for _ in range(3):
            version = self.active_version()
            if version is None:
                return None
            try:
                return self._from_cache(version, lambda path: load_model(path, verify_hashes=True))
            except (ArtifactError, NotFoundError) as exc:
                error = exc
                if self.active_version() == version:
                    raise  # not a switch while we loaded: the version itself is broken
        assert error is not None
        raise error

    def _from_cache(self, version: str, opener: Callable[[Path], T]) -> T:
        try:
            return opener(self._cached(version))
        except ArtifactError as exc:
            # The local copy is damaged (disk, a hand edit): Redis holds the checked original.
            log.warning(
                "cached copy of version %s is damaged (%s); fetching it again", version, exc
            )
            return opener(self._cached(version, fresh=True))

    def version_path(self, version: str) -> Path:
        """A stored version's files on local disk (downloaded into the cache if need be)."""
        if version not in {v.version for v in self.list_versions()}:
            raise NotFoundError(f"no model version {shown(version)} in this store")
        return self._cached(version)

    def _cached(self, version: str, *, fresh: bool = False) -> Path:
        """The version's directory in the local cache, downloaded first if need be (`fresh`:
        downloaded again whatever is there)."""
        final = self.cache_dir / _plain_name(version, "version")
        if (final / MANIFEST).is_file() and not fresh:
            return final
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.cache_dir / ".lock"):
            if (final / MANIFEST).is_file() and not fresh:
                return final  # another worker downloaded it while we waited for the lock
            for leftover in self.cache_dir.glob(".download-*"):
                shutil.rmtree(leftover, ignore_errors=True)  # a downloader died; we hold the lock
            shutil.rmtree(final, ignore_errors=True)
            incoming = self.cache_dir / f".download-{version}-{os.getpid()}"
            incoming.mkdir()
            try:
                self._download(version, incoming)
                os.replace(incoming, final)
            finally:
                shutil.rmtree(incoming, ignore_errors=True)
            fsync_dir(self.cache_dir)
            self._sweep_cache(version)
        return final

    def _download(self, version: str, directory: Path) -> None:
        with self._reachable(f"downloading version {version}"):
            raw_manifest = self._client.get(self._model_key(version, "manifest"))
            counts = self._chunk_counts(version)
            if raw_manifest is None:
                raise NotFoundError(f"model version {version!r} is not in Redis ({self.prefix})")
            manifest = _manifest_decoder.decode(raw_manifest)
            for name, entry in manifest.files.items():
                path = directory / _plain_name(name, f"version {version}: file")
                digest = hashlib.sha256()
                with path.open("wb") as handle:
                    for index in range(counts.get(name, 0)):
                        raw = self._client.get(self._chunk_key(version, name, index))
                        if raw is None:
                            raise NotFoundError(f"model version {version!r} lost {name} in Redis")
                        chunk = as_bytes(raw)
                        digest.update(chunk)
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
                if path.stat().st_size != entry.size or digest.hexdigest() != entry.sha256:
                    raise ArtifactError(
                        f"version {version}: {name}: the copy in Redis differs from the manifest "
                        "(size or SHA-256 mismatch)"
                    )
        (directory / MANIFEST).write_bytes(as_bytes(raw_manifest))
        with (directory / MANIFEST).open("rb") as handle:
            os.fsync(handle.fileno())
        fsync_dir(directory)

    def _sweep_cache(self, current: str) -> None:
        """Drop cached copies of versions no longer stored (mapped files stay valid until unmapped)."""
        try:
            with self._reachable("listing versions"):
                stored = {as_text(v) for v in self._client.hkeys(self._versions_key)}
        except StoreUnavailable:
            return
        keep = stored | {current}
        for path in self.cache_dir.iterdir():
            if path.is_dir() and not path.name.startswith(".") and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)

    # --- webhooks ----------------------------------------------------------------------------
    @property
    def outbox(self) -> RedisOutbox:
        return self._outbox

    def delivery_lock(self, ttl_seconds: float = DELIVERY_LOCK_TTL_SECONDS) -> TrainingLock:
        lock = RedisTrainingLock(
            self._client,
            f"{self.prefix}:deliver-lock",
            ttl_seconds,
            holder="deliverer",
        )
        lock.acquire()
        return lock

    # --- training runs -----------------------------------------------------------------------
    @contextmanager
    def training_lock(
        self, ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS
    ) -> Iterator[TrainingLock]:
        """redis-py's `Lock` on `{prefix}:train-lock`, renewed while held (see `store.locks`)."""
        lock = RedisTrainingLock(self._client, f"{self.prefix}:train-lock", ttl_seconds)
        lock.acquire()
        try:
            yield lock
        finally:
            lock.release()

    def run_log(self) -> RunLog:
        return RedisRunLog(self._client, f"{self.prefix}:runs")

    def ping(self) -> None:
        with self._reachable("pinging"):
            self._client.ping()

    def async_client(self) -> redis.asyncio.Redis:
        """A new asyncio client to this store's Redis or cluster, for the console's sessions
        (`recsvc.api.console.sessions`); it connects on first use, the caller closes it
        (`aclose()`)."""
        return self._target.connect_async()

    def close(self) -> None:
        if self._mirror is not None:
            self._changes.mirror = None
            self._mirror.stop()
            self._mirror = None
        self._client.close()
