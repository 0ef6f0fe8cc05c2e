"""Importer for the UCI "Online Retail" purchase history: its order lines become the contract's tables.

The purchases are real (Chen, Sain and Guo 2012, CC BY 4.0); the NPS, CSAT and CES answers are
simulated by `training.sources.feedback_model`, and the output's PROVENANCE.md says so. The rules (what is set
aside, how cancellations become returns, how a category is derived) live here and in
docs/online-retail.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import msgspec
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.contract import DATETIME_FORMATS, TABLES
from recsvc.errors import DataContractError
from training.progress import Progress
from training.sources.feedback_model import simulate_feedback
from training.validate.dataset import DTYPES

SOURCE_LICENSE = "CC BY 4.0"
SOURCE_CITATION = (
    "Chen, D., Sain, S. L. and Guo, K. (2012). Data mining for the online retail industry: a case "
    "study of RFM model-based customer segmentation using data mining. Journal of Database Marketing "
    "and Customer Strategy Management 19, 197-208. doi:10.1057/dbm.2012.17"
)
ONLINE_RETAIL = 'UCI Machine Learning Repository, dataset 352 "Online Retail"'
ONLINE_RETAIL_II = 'UCI Machine Learning Repository, dataset 502 "Online Retail II"'

# Source columns by the name we give them: (Online Retail spelling, Online Retail II spelling).
# Headers are compared without case, spaces or punctuation ("Customer ID" is "CustomerID").
_DESCRIPTION = "description"
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    c.ORDER_ID: ("InvoiceNo", "Invoice"),
    c.PRODUCT_ID: ("StockCode",),
    _DESCRIPTION: ("Description",),
    c.QUANTITY: ("Quantity",),
    c.ORDERED_AT: ("InvoiceDate",),
    c.UNIT_PRICE: ("UnitPrice", "Price"),
    c.CUSTOMER_ID: ("CustomerID", "Customer ID"),
    c.COUNTRY: ("Country",),
}
READERS = (".parquet", ".csv", ".xlsx")

# Stock codes that are not goods, compared upper-cased: postage (POST, DOT), carriage (C2), manual
# entries (M), discounts (D), samples (S), bad-debt adjustments (B, and ADJUST* in Online Retail II),
# bank and marketplace fees, Cancer Research UK commission, and PADS (cushion pads sold at 0.001).
NON_PRODUCT_CODES: frozenset[str] = frozenset(
    {"POST", "DOT", "C2", "M", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS"}
    | {"ADJUST", "ADJUST2"}
)
# Prefixes of non-product codes: gift vouchers (gift_0001_20, ...) and test lines (TEST001, ...).
NON_PRODUCT_PREFIXES: tuple[str, ...] = ("GIFT_", "TEST")
# Services booked under ordinary-looking codes (23444 "Next Day Carriage", 23574 "PACKING CHARGE", a
# gift voucher under 22016): a line whose whole description names a service is not a product either,
# while a "CARRIAGE CLOCK" still is.
NON_PRODUCT_DESCRIPTION = (
    r"(?i)^(?:NEXT DAY CARRIAGE|CARRIAGE|DOTCOM POSTAGE|POSTAGE|PACKING CHARGE)$|\bGIFT VOUCHER\b"
)

# A product's category from its description, keywords tried in three passes: every keyword of the
# first rule (seasonal goods are "christmas" whatever they are); then the multi-word keywords of the
# other rules, in rule order (a phrase is more specific: "HOT WATER BOTTLE" is home decor although
# "BOTTLE" is kitchen); then their single words, in rule order, so specific kinds (bags, jewellery,
# candles) come before the broad kitchen and home groups. A keyword matches whole words with an
# optional plural "S" ("BAG" matches "JUMBO BAGS", not "BAGUETTE"). No match or no description: "other".
OTHER_CATEGORY = "other"
CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    (
        "christmas",
        "CHRISTMAS, XMAS, ADVENT, SANTA, REINDEER, SNOWFLAKE, SNOWMAN, NATIVITY, BAUBLE, "
        "JINGLE BELL, ELF",
    ),
    (
        "bags",
        "BAG, HANDBAG, SHOPPER, TOTE, PURSE, WALLET, RUCKSACK, BACKPACK, SATCHEL, WASHBAG, HOLDALL",
    ),
    (
        "jewellery & accessories",
        "NECKLACE, NECKL, BRACELET, BRACLET, BANGLE, EARRING, RING, PENDANT, BROOCH, CHARM, BEAD, "
        "DIAMANTE, JEWELLERY, CHOKER, LARIAT, TIARA, HAIR, HAIRCLIP, HAIRBAND, HAIR CLIP, SCARF, "
        "UMBRELLA, PARASOL, KEYRING, KEY RING, KEY FOB, KEY-CHAIN, SUNGLASSES, HAT, GLOVE, MITTEN, "
        "LUGGAGE TAG, PASSPORT COVER, COMPACT MIRROR, LIP GLOSS, HAND WARMER, PONCHO, RAIN MAC",
    ),
    (
        "candles & lights",
        "CANDLE, CANDLEHOLDER, CANDLESTICK, CANDLEPOT, CANDLESTAND, T-LIGHT, TLIGHT, TEA LIGHT, "
        "TEALIGHT, LANTERN, LAMP, LAMPSHADE, LIGHT, NIGHTLIGHT, VOTIVE, INCENSE, OIL BURNER, "
        "FRAGRANCE OIL, TORCH, CHANDELIER, DISCO BALL",
    ),
    (
        "toys & games",
        "TOY, GAME, JIGSAW, PUZZLE, DOLL, TEDDY, PLAYING CARD, DOMINO, DOMINOE, SKITTLE, "
        "SKIPPING ROPE, SPINNING TOP, MARBLE, BUBBLE, BALLOON, KNITTING NANCY, PUPPET, SOLDIER, "
        "FELTCRAFT, DRAWING SLATE, MAGIC DRAWING, COLOURING, CRAYON, PAINT SET, PAINT YOUR OWN, "
        "HELICOPTER, RACING CAR, YO-YO, KITE, DICE, CHESS, BINGO, SNAKE, BLOCK, BUILDING BLOCK, "
        "TRAIN, LUDO, NAUGHTS & CROSSES, FLYING DISC, MODELLING CLAY, ROCKING HORSE, PLAYHOUSE, "
        "TATTOO, FARM ANIMAL, CREEPY CRAWLIE, INFLATABLE, SPORTING FUN, SNAP CARD",
    ),
    (
        "stationery & cards",
        "CARD, NOTEBOOK, NOTEPAD, NOTE BOOK, NOTELET, JOURNAL, DIARY, PEN, PENCIL, ERASER, RUBBER, "
        "RULER, SHARPENER, STICKER, TAPE, WRAP, WRAPPING, ENVELOPE, CALENDAR, SKETCHBOOK, MEMO, "
        "MEMOBOARD, GIFT TAG, TAG, RIBBON, STAMP, ORIGAMI, CHALK, PHOTO ALBUM, ADDRESS BOOK, "
        "PAPER CHAIN, POSTCARD, BOOKMARK, TISSUE PAPER, CRAFT, STATIONERY, WRITING SET, SCISSOR, "
        "HOLE PUNCH, PAPERWEIGHT, EXERCISE BOOK, SCRAP BOOK, POCKET BOOK, INVITE, BADGE, "
        "CALCULATOR, IRON ON PATCHE, SEWING KIT, NEEDLE SET",
    ),
    (
        "kitchen & dining",
        "MUG, CUP, TEACUP, SAUCER, PLATE, BOWL, DISH, JUG, TEAPOT, TEA SET, TEA TOWEL, TEA COSY, "
        "TEA FOR ONE, TEA CADDY, TEA GLASS, COFFEE, CUTLERY, SPOON, FORK, KNIFE, CHOPSTICK, TRAY, "
        "NAPKIN, PLACEMAT, COASTER, CAKE, CAKESTAND, BAKING, APRON, OVEN, KITCHEN, LUNCH BOX, "
        "LUNCHBOX, JAM, JAR, BEAKER, TUMBLER, GLASSE, APERITIF GLASS, MILKSHAKE GLASS, CHALICE, "
        "PAN, FRYING, SNACK, BREAKFAST, DINER, PANTRY, BISCUIT, CHOPPING BOARD, RECIPE, EGG CUP, "
        "STRAW, DOILY, DOILIE, MEASURING, SUGAR, MILK, BREAD, TOAST, TOASTRACK, CONTAINER, FOOD, "
        "BOTTLE, FLASK, PICNIC, SCALE, TIN, DRINK, WINE, CHAMPAGNE, GRATER, SIEVE, STRAINER, "
        "SQUEEZER, BUTTER, COOKIE CUTTER, PLATTER, FRUITBOWL, TABLECLOTH, TABLE CLOTH, "
        "PETIT FOUR CASE, ICE LOLLY, LOLLY MAKER, SALT AND PEPPER, COOKING SET",
    ),
    (
        "garden",
        "GARDEN, GARDENER, PLANT, PLANTER, PLANT POT, FLOWER POT, FLOWERPOT, POT, WATERING CAN, "
        "HERB, SEED, BIRD FEEDER, FEEDER, BIRDHOUSE, BIRD HOUSE, BIRD TABLE, NESTING BOX, "
        "WHEELBARROW, TROWEL, GNOME, SHED, GREENHOUSE, PEG, WINDMILL, PINWHEEL, HAMMOCK, CLOCHE, "
        "WINDSOCK, KNEELING MAT, KNEELING PAD, HERB GARDEN, BEACH SPADE, TOADSTOOL, MUSHROOM",
    ),
    (
        "home decor",
        "DECORATION, DECORATIVE, CUSHION, FRAME, PHOTOFRAME, MIRROR, CLOCK, SIGN, DOORSIGN, "
        "PLAQUE, DOORMAT, DOORSTOP, DOOR, HOOK, HANGER, GARLAND, BUNTING, WREATH, VASE, WALL, "
        "TILE, ORNAMENT, CABINET, DRAWER, KNOB, CURTAIN, QUILT, THROW, BLANKET, BASKET, STORAGE, "
        "BOX, BOXE, HOT WATER BOTTLE, TOWEL, BATHROOM, BATH SPONGE, FLANNEL, SHOWER CAP, TISSUE, "
        "SOAP, RACK, SHELF, PICTURE, PHOTO, ART, CHALKBOARD, BLACKBOARD, HOLDER, MOBILE, HEART, "
        "STAR, TRINKET, FLOWER, FEATHER, BIRD, BUTTERFLY, ENAMEL, MAGNET, CHIME, BELL, LANDMARK, "
        "SHELL, EGG, EASTER, HANGING, STOOL, CHAIR, POUFFE, TABLE, FLAG, ROSETTE, LETTER, BIN, "
        "FILLER PAD, ASHTRAY, MAT, CHEST, WALL CLOCK, BATHROOM BOTTLE",
    ),
)

# Why a source line is set aside (`set_aside`), checked in this order, the first that applies wins:
# no customer id, then a non-product code, then invalid values.
GUEST = "guest"
NON_PRODUCT = "non_product"
INVALID = "invalid"

# Slashed dates appear in CSV exports of the file, month-first ("12/1/2010 8:26") or day-first.
# Whichever format (of these and the contract's ISO spellings) parses most of the column is used; a
# day above 12 settles month-first against day-first.
_SLASHED_DATETIME_FORMATS = (
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
)

_SET_ASIDE = "set_aside"
_IS_CANCELLATION = "is_cancellation"
_SOURCE_LINES = "source_lines"
_LINE = "line"
_CANCEL = "cancellation"
_RANK = "rank"
_CANCELLED_AT = "cancelled_at"
_CANCELLED_QTY = "cancelled_quantity"
_RETURNED_QTY = "returned_quantity"
_DELIVERED = "delivered"
_RETURNED = "returned"


class ImportSummary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the importer read, set aside and wrote. `*_lines` count source lines unless said otherwise.

    lines_read = guest_lines + non_product_lines + invalid_lines + purchase_lines + cancellation_lines,
    and cancellation_lines = matched_cancellation_lines + unmatched_cancellation_lines.
    """

    source: str
    source_sha256: str
    # "Online Retail" or "Online Retail II", told apart by the header spelling.
    release: str
    seed: int
    first_order_date: str | None
    last_order_date: str | None
    lines_read: int
    guest_lines: int
    non_product_lines: int
    non_product_by_code: dict[str, int]
    invalid_lines: int
    purchase_lines: int
    cancellation_lines: int
    matched_cancellation_lines: int
    unmatched_cancellation_lines: int
    unmatched_cancelled_quantity: int
    # Source lines folded into another line of the same invoice and stock code.
    merged_duplicate_lines: int
    customers: int
    products: int
    invoices: int
    order_lines: int
    delivered_lines: int
    returned_lines: int
    # Purchase lines partly cancelled, written as a returned and a delivered order line.
    split_lines: int
    returned_quantity: int
    nps_responses: int
    csat_responses: int
    ces_responses: int
    seconds: float = 0.0


# --- reading --------------------------------------------------------------------------------------


def _header_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _resolve_columns(names: list[str], src: Path) -> dict[str, str]:
    """Map each source column (in any accepted spelling) to our name; a missing one is an error."""
    by_key: dict[str, str] = {}
    for name in names:
        by_key.setdefault(_header_key(name), name)
    renames: dict[str, str] = {}
    for ours, spellings in SOURCE_COLUMNS.items():
        found = next((by_key[k] for k in map(_header_key, spellings) if k in by_key), None)
        if found is None:
            also = f" (or {' / '.join(spellings[1:])})" if len(spellings) > 1 else ""
            raise DataContractError(f"{src}: missing column {spellings[0]}{also}")
        renames[found] = ours
    return renames


def _release(names: list[str]) -> str:
    keys = {_header_key(n) for n in names}
    return "Online Retail II" if "invoice" in keys and "invoiceno" not in keys else "Online Retail"


def read_source(src: Path) -> tuple[pl.DataFrame, str]:
    """The file's eight columns under our names, and which release it is. CSV and XLSX are read as
    text and typed later, so a column that looks numeric in one sheet and textual in another cannot
    break the read. Every sheet of a workbook is read: Online Retail II has one per year."""
    suffix = src.suffix.lower()
    if suffix not in READERS:
        expected = ", ".join(READERS)
        raise DataContractError(f"{src}: unsupported file type {src.suffix!r}, expected {expected}")
    if not src.is_file():
        raise DataContractError(f"{src}: no such file")
    try:
        if suffix == ".parquet":
            frames = [pl.read_parquet(src)]
        elif suffix == ".csv":
            frames = [pl.read_csv(src, infer_schema=False)]
        else:
            sheets = pl.read_excel(src, sheet_id=0, infer_schema_length=0)
            frames = list(sheets.values()) if isinstance(sheets, dict) else [sheets]
    except Exception as exc:  # polars, fastexcel and the OS raise many kinds: all mean "unreadable"
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataContractError(f"{src}: cannot read the file ({detail})") from exc
    parts = []
    for frame in frames:
        renames = _resolve_columns(frame.columns, src)
        parts.append(frame.select(pl.col(old).alias(new) for old, new in renames.items()))
    release = _release(frames[0].columns)
    if len(parts) == 1:
        return parts[0], release
    return pl.concat([p.with_columns(pl.all().cast(pl.String)) for p in parts]), release


# --- typing and setting aside ---------------------------------------------------------------------


def _text(name: str) -> pl.Expr:
    expr = pl.col(name).cast(pl.String).str.strip_chars()
    return pl.when(expr == "").then(None).otherwise(expr)


def _number(name: str, schema: pl.Schema) -> pl.Expr:
    if schema[name].is_numeric():
        return pl.col(name).cast(pl.Float64)
    return _text(name).cast(pl.Float64, strict=False)


def _whole_number(name: str, schema: pl.Schema) -> pl.Expr:
    """Integer values; a fractional or unreadable value becomes null (and so the line invalid)."""
    if schema[name].is_integer():
        return pl.col(name).cast(pl.Int64)
    value = _number(name, schema)
    return pl.when(value == value.round(0)).then(value.cast(pl.Int64, strict=False))


def _customer_id(schema: pl.Schema) -> pl.Expr:
    """The customer id as the text of the integer: 17850, 17850.0 and "17850" are one customer."""
    dtype = schema[c.CUSTOMER_ID]
    if dtype.is_integer():
        return pl.col(c.CUSTOMER_ID).cast(pl.String)
    if dtype.is_float():
        return _whole_number(c.CUSTOMER_ID, schema).cast(pl.String)
    return _text(c.CUSTOMER_ID).str.replace(r"\.0*$", "")


def _datetime_format(values: pl.Series) -> str | None:
    """The format, of the contract's ISO spellings and the slashed ones, that parses most values."""
    distinct = values.drop_nulls().str.strip_chars().unique()
    best, best_count = None, 0
    for fmt in (*DATETIME_FORMATS, *_SLASHED_DATETIME_FORMATS):
        count = distinct.str.to_datetime(fmt, strict=False, time_unit="us").count()
        if count > best_count:
            best, best_count = fmt, count
    return best


def _ordered_at(raw: pl.DataFrame, src: Path) -> pl.Expr:
    """Invoice times as naive datetimes (the shop's UK time, taken as UTC like any naive time)."""
    dtype = raw.schema[c.ORDERED_AT]
    col = pl.col(c.ORDERED_AT)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return col.cast(pl.Datetime("us"))
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us"))
    text = raw.get_column(c.ORDERED_AT).cast(pl.String)
    fmt = _datetime_format(text)
    if fmt is None:
        if text.drop_nulls().len() == 0:
            return pl.lit(None, dtype=pl.Datetime("us"))
        example = text.drop_nulls()[0]
        raise DataContractError(
            f"{src}: column InvoiceDate: no readable date-time (e.g. 2010-12-01 08:26:00), got {example!r}"
        )
    parsed = _text(c.ORDERED_AT).str.to_datetime(fmt, strict=False, time_unit="us")
    if "%:z" in fmt:
        parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return parsed


def _is_non_product() -> pl.Expr:
    code = pl.col(c.PRODUCT_ID)
    return (
        code.is_in(sorted(NON_PRODUCT_CODES))
        | pl.any_horizontal(code.str.starts_with(prefix) for prefix in NON_PRODUCT_PREFIXES)
        | pl.col(_DESCRIPTION).str.contains(NON_PRODUCT_DESCRIPTION).fill_null(False)
    ).fill_null(False)


def typed_lines(raw: pl.DataFrame, src: Path) -> pl.LazyFrame:
    """Type the source lines and mark each one set aside with why (`set_aside`, null when kept).

    Stock codes are upper-cased: the file spells some codes both ways ("85123a", "85123A") for one
    product. Country "Unspecified" becomes null. A cancellation's invoice number starts with "C"; it
    needs a negative quantity, any other line a positive one, and every line a positive price.
    """
    schema = raw.schema
    country = _text(c.COUNTRY)
    lines = raw.lazy().select(
        _text(c.ORDER_ID).str.to_uppercase().alias(c.ORDER_ID),
        _text(c.PRODUCT_ID).str.to_uppercase().alias(c.PRODUCT_ID),
        _text(_DESCRIPTION).alias(_DESCRIPTION),
        _whole_number(c.QUANTITY, schema).alias(c.QUANTITY),
        _ordered_at(raw, src).alias(c.ORDERED_AT),
        _number(c.UNIT_PRICE, schema).alias(c.UNIT_PRICE),
        _customer_id(schema).alias(c.CUSTOMER_ID),
        pl.when(country != "Unspecified").then(country).alias(c.COUNTRY),
    )
    cancellation = pl.col(c.ORDER_ID).str.starts_with("C").fill_null(False)
    quantity = pl.col(c.QUANTITY)
    required = pl.col(c.ORDER_ID, c.PRODUCT_ID, c.QUANTITY, c.UNIT_PRICE, c.ORDERED_AT)
    invalid = (
        pl.any_horizontal(required.is_null())
        | (pl.col(c.UNIT_PRICE) <= 0)
        | pl.when(cancellation).then(quantity >= 0).otherwise(quantity <= 0)
    ).fill_null(True)
    return lines.with_columns(
        cancellation.alias(_IS_CANCELLATION),
        pl.when(pl.col(c.CUSTOMER_ID).is_null())
        .then(pl.lit(GUEST))
        .when(_is_non_product())
        .then(pl.lit(NON_PRODUCT))
        .when(invalid)
        .then(pl.lit(INVALID))
        .alias(_SET_ASIDE),
    )


# --- purchases and cancellations ------------------------------------------------------------------


def merged_lines(lines: pl.LazyFrame, *, cancellations: bool) -> pl.LazyFrame:
    """Kept lines of one kind, one per (invoice, stock code), oldest first, with a positive quantity.

    Lines repeating a code within an invoice are summed, priced at their quantity-weighted mean (to
    1e-6) so the invoice total is unchanged, and every line is dated at its invoice's first timestamp
    (a few invoices span two minutes). An invoice belongs to one customer.
    """
    kept = lines.filter(pl.col(_SET_ASIDE).is_null(), pl.col(_IS_CANCELLATION) == cancellations)
    quantity = pl.col(c.QUANTITY).abs()
    return (
        kept.with_columns(pl.col(c.ORDERED_AT).min().over(c.ORDER_ID))
        .group_by(c.ORDER_ID, c.PRODUCT_ID)
        .agg(
            pl.col(c.CUSTOMER_ID).first(),
            quantity.sum().alias(c.QUANTITY),
            # Rounded: float sums may differ in the last bit with the order polars adds them in.
            ((quantity * pl.col(c.UNIT_PRICE)).sum() / quantity.sum()).round(6).alias(c.UNIT_PRICE),
            pl.col(c.ORDERED_AT).first(),
            pl.len().alias(_SOURCE_LINES),
        )
        .sort(c.ORDERED_AT, c.ORDER_ID, c.PRODUCT_ID)
    )


def match_cancellations(
    purchases: pl.DataFrame, cancellations: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Turn cancellations into returned quantities of earlier purchase lines.

    The rule: cancellations are taken in time order; each takes the latest purchase line of the same
    customer and stock code, at or before the cancellation, whose quantity not yet returned covers the
    whole cancelled quantity. A cancellation without such a line is unmatched.

    `purchases` needs `line` (ids increasing with ordered_at, so the latest line has the largest id),
    customer_id, product_id, ordered_at and quantity; `cancellations` needs `cancellation` (ids
    increasing with ordered_at), customer_id, product_id, ordered_at and quantity (positive). Returns
    (line, returned_quantity) for each returned purchase line, and the unmatched cancellations.

    Why rounds: what a cancellation may take depends on what earlier cancellations of the same
    customer and stock code took, so within one (customer, stock code) history matching is sequential;
    different histories never share a line. Round k matches the k-th cancellation of every history
    at once, with joins, so the loop runs as often as the longest chain of cancellations of one
    product by one customer (10 in the full file), not once per row.
    """
    key = [c.CUSTOMER_ID, c.PRODUCT_ID]
    ranked = cancellations.with_columns(
        pl.col(_CANCEL).rank("ordinal").over(key).cast(pl.Int64).sub(1).alias(_RANK)
    )
    candidates = (
        ranked.select(
            *key,
            _CANCEL,
            _RANK,
            pl.col(c.ORDERED_AT).alias(_CANCELLED_AT),
            pl.col(c.QUANTITY).alias(_CANCELLED_QTY),
        )
        .join(purchases.select(*key, _LINE, c.ORDERED_AT, c.QUANTITY), on=key, how="inner")
        .filter(pl.col(c.ORDERED_AT) <= pl.col(_CANCELLED_AT))
        .select(_CANCEL, _RANK, _LINE, c.QUANTITY, _CANCELLED_QTY)
    )
    taken = pl.DataFrame(schema={_LINE: purchases.schema[_LINE], _RETURNED_QTY: pl.Int64})
    matched = [pl.DataFrame(schema={_CANCEL: cancellations.schema[_CANCEL]})]
    rounds = ranked.select(pl.col(_RANK).max().fill_null(-1) + 1).item()
    for rank in range(rounds):
        chosen = (
            candidates.filter(pl.col(_RANK) == rank)
            .join(taken, on=_LINE, how="left")
            .filter(
                pl.col(c.QUANTITY) - pl.col(_RETURNED_QTY).fill_null(0) >= pl.col(_CANCELLED_QTY)
            )
            .group_by(_CANCEL)
            .agg(pl.col(_LINE).max(), pl.col(_CANCELLED_QTY).first())
        )
        matched.append(chosen.select(_CANCEL))
        taken = (
            pl.concat([taken, chosen.select(_LINE, pl.col(_CANCELLED_QTY).alias(_RETURNED_QTY))])
            .group_by(_LINE)
            .agg(pl.col(_RETURNED_QTY).sum())
        )
    unmatched = ranked.join(pl.concat(matched), on=_CANCEL, how="anti").drop(_RANK)
    return taken.sort(_LINE), unmatched.sort(_CANCEL)


# --- contract tables ------------------------------------------------------------------------------


def _contract_frame(table: str, frame: pl.LazyFrame) -> pl.LazyFrame:
    """The table's contract columns, in contract order and type; absent optional columns are null."""
    names = frame.collect_schema().names()
    return frame.select(
        (pl.col(f.name) if f.name in names or f.required else pl.lit(None))
        .cast(DTYPES[f.kind])
        .alias(f.name)
        for f in TABLES[table].fields
    )


def category_of(description: pl.Expr) -> pl.Expr:
    """A product's category from its description by CATEGORY_RULES; "other" when nothing matches."""
    (first, first_keywords), *others = (
        (name, [k.strip() for k in keywords.split(",")]) for name, keywords in CATEGORY_RULES
    )
    passes = [
        (first, first_keywords),
        *((name, [k for k in keywords if " " in k]) for name, keywords in others),
        *((name, [k for k in keywords if " " not in k]) for name, keywords in others),
    ]
    text = description.str.to_uppercase()
    category = pl.lit(OTHER_CATEGORY)
    # Built from the last pass to the first, so the first pass that matches is the outermost.
    for name, keywords in reversed(passes):
        if keywords:
            pattern = r"\b(?:" + "|".join(map(re.escape, keywords)) + r")S?\b"
            matches = text.str.contains(pattern).fill_null(False)
            category = pl.when(matches).then(pl.lit(name)).otherwise(category)
    return category


def products_table(lines: pl.LazyFrame) -> pl.LazyFrame:
    """One row per stock code sold at least once (guest sales count: they are real sales of it):
    name = its most common description (ties: alphabetical), price = its median unit price."""
    sales = lines.filter(
        pl.col(_SET_ASIDE).is_null() | (pl.col(_SET_ASIDE) == GUEST),
        ~pl.col(_IS_CANCELLATION),
        ~_is_non_product(),
        pl.col(c.QUANTITY) > 0,
        pl.col(c.UNIT_PRICE) > 0,
        pl.col(c.ORDERED_AT).is_not_null(),
    )
    names = (
        sales.filter(pl.col(_DESCRIPTION).is_not_null())
        .group_by(c.PRODUCT_ID, _DESCRIPTION)
        .agg(pl.len())
        .sort([c.PRODUCT_ID, "len", _DESCRIPTION], descending=[False, True, False])
        .group_by(c.PRODUCT_ID, maintain_order=True)
        .agg(pl.col(_DESCRIPTION).first().alias(c.NAME))
    )
    products = (
        sales.group_by(c.PRODUCT_ID)
        .agg(pl.col(c.UNIT_PRICE).median().alias(c.PRICE))
        .join(names, on=c.PRODUCT_ID, how="left")
        .with_columns(category_of(pl.col(c.NAME)).alias(c.CATEGORY), pl.lit(True).alias(c.IN_STOCK))
        .sort(c.PRODUCT_ID)
    )
    return _contract_frame(c.PRODUCTS, products)


def order_lines_table(purchases: pl.DataFrame, returned: pl.DataFrame) -> pl.LazyFrame:
    """Purchase lines with their returns applied: a fully returned line becomes `returned`, a partly
    returned one is split into a `returned` line (the cancelled quantity) and a `delivered` line (the
    rest), both keeping the invoice and its time. Delivery dates are not in the source: null."""
    lines = (
        purchases.lazy()
        .join(returned.lazy(), on=_LINE, how="left")
        .with_columns(pl.col(_RETURNED_QTY).fill_null(0))
    )
    returned_part = lines.filter(pl.col(_RETURNED_QTY) > 0).with_columns(
        pl.col(_RETURNED_QTY).alias(c.QUANTITY), pl.lit(_RETURNED).alias(c.STATUS)
    )
    delivered_part = lines.filter(pl.col(c.QUANTITY) > pl.col(_RETURNED_QTY)).with_columns(
        (pl.col(c.QUANTITY) - pl.col(_RETURNED_QTY)).alias(c.QUANTITY),
        pl.lit(_DELIVERED).alias(c.STATUS),
    )
    orders = pl.concat([delivered_part, returned_part]).sort(
        c.ORDERED_AT, c.ORDER_ID, c.PRODUCT_ID, c.STATUS
    )
    return _contract_frame(c.ORDERS, orders)


def customers_table(lines: pl.LazyFrame, orders: pl.LazyFrame) -> pl.LazyFrame:
    """One row per customer with an order line: signup_date = day of the first purchase, country =
    the country on most of their kept lines (ties: alphabetical). No demographics are invented, so
    age_band is null."""
    countries = (
        lines.filter(pl.col(_SET_ASIDE).is_null(), pl.col(c.COUNTRY).is_not_null())
        .group_by(c.CUSTOMER_ID, c.COUNTRY)
        .agg(pl.len())
        .sort([c.CUSTOMER_ID, "len", c.COUNTRY], descending=[False, True, False])
        .group_by(c.CUSTOMER_ID, maintain_order=True)
        .agg(pl.col(c.COUNTRY).first())
    )
    customers = (
        orders.group_by(c.CUSTOMER_ID)
        .agg(pl.col(c.ORDERED_AT).min().dt.date().alias(c.SIGNUP_DATE))
        .join(countries, on=c.CUSTOMER_ID, how="left")
        .sort(c.CUSTOMER_ID)
    )
    return _contract_frame(c.CUSTOMERS, customers)


# --- the import -----------------------------------------------------------------------------------


def import_online_retail(
    src: Path, out_dir: Path, *, seed: int = 0, show_progress: bool = True
) -> ImportSummary:
    """Import an Online Retail (or Online Retail II) file into `out_dir`: contract Parquet tables,
    simulated NPS/CSAT/CES responses, PROVENANCE.md and the machine-readable _import_report.json."""
    src, out_dir = Path(src), Path(out_dir)
    progress = Progress("import-online-retail", unit="lines", enabled=show_progress)
    started = time.perf_counter()
    raw, release = read_source(src)
    lines = typed_lines(raw, src).collect()
    lazy_lines = lines.lazy()

    purchases, cancellations = pl.collect_all(
        [
            merged_lines(lazy_lines, cancellations=False),
            merged_lines(lazy_lines, cancellations=True),
        ]
    )
    if purchases.is_empty():
        raise DataContractError(
            f"{src}: no purchase line with a customer id and a product to import"
        )
    purchases = purchases.with_row_index(_LINE)
    cancellations = cancellations.with_row_index(_CANCEL)
    returned, unmatched = match_cancellations(purchases, cancellations)
    orders_lf = order_lines_table(purchases, returned)
    orders, customers, products = pl.collect_all(
        [orders_lf, customers_table(lazy_lines, orders_lf), products_table(lazy_lines)]
    )
    feedback = simulate_feedback(orders, customers, seed=seed)
    tables = {
        c.CUSTOMERS: customers,
        c.PRODUCTS: products,
        c.ORDERS: orders,
        c.NPS_RESPONSES: feedback.nps_responses,
        c.CSAT_RESPONSES: feedback.csat_responses,
        c.CES_RESPONSES: feedback.ces_responses,
    }
    tables = {name: _contract_frame(name, frame.lazy()).collect() for name, frame in tables.items()}

    reasons = dict(lines.get_column(_SET_ASIDE).value_counts().iter_rows())
    non_product = lines.filter(pl.col(_SET_ASIDE) == NON_PRODUCT).get_column(c.PRODUCT_ID)
    statuses = orders.get_column(c.STATUS)
    cancellation_lines = int(cancellations.get_column(_SOURCE_LINES).sum())
    unmatched_lines = int(unmatched.get_column(_SOURCE_LINES).sum())
    purchase_lines = int(purchases.get_column(_SOURCE_LINES).sum())
    day = pl.col(c.ORDERED_AT).dt.strftime("%Y-%m-%d")
    first, last = orders.select(day.min().alias("first"), day.max().alias("last")).row(0)
    summary = ImportSummary(
        source=src.name,
        source_sha256=_sha256(src),
        release=release,
        seed=seed,
        first_order_date=first,
        last_order_date=last,
        lines_read=lines.height,
        guest_lines=reasons.get(GUEST, 0),
        non_product_lines=reasons.get(NON_PRODUCT, 0),
        non_product_by_code=dict(non_product.value_counts(sort=True).iter_rows()),
        invalid_lines=reasons.get(INVALID, 0),
        purchase_lines=purchase_lines,
        cancellation_lines=cancellation_lines,
        matched_cancellation_lines=cancellation_lines - unmatched_lines,
        unmatched_cancellation_lines=unmatched_lines,
        unmatched_cancelled_quantity=int(unmatched.get_column(c.QUANTITY).sum()),
        merged_duplicate_lines=purchase_lines
        - purchases.height
        + cancellation_lines
        - cancellations.height,
        customers=customers.height,
        products=products.height,
        invoices=orders.get_column(c.ORDER_ID).n_unique(),
        order_lines=orders.height,
        delivered_lines=int((statuses == _DELIVERED).sum()),
        returned_lines=int((statuses == _RETURNED).sum()),
        split_lines=returned.join(purchases, on=_LINE)
        .filter(pl.col(_RETURNED_QTY) < pl.col(c.QUANTITY))
        .height,
        returned_quantity=int(returned.get_column(_RETURNED_QTY).sum()),
        nps_responses=tables[c.NPS_RESPONSES].height,
        csat_responses=tables[c.CSAT_RESPONSES].height,
        ces_responses=tables[c.CES_RESPONSES].height,
        seconds=round(time.perf_counter() - started, 2),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.write_parquet(out_dir / f"{name}.parquet")
    report = json.dumps(msgspec.to_builtins(summary), indent=2)
    (out_dir / "_import_report.json").write_text(report + "\n", encoding="utf-8")
    (out_dir / "PROVENANCE.md").write_text(provenance_markdown(summary), encoding="utf-8")
    progress.done = lines.height
    progress.finish()
    return summary


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def provenance_markdown(summary: ImportSummary) -> str:
    """PROVENANCE.md: what in the output is real, what is simulated, and where the real part is from."""
    source = ONLINE_RETAIL_II if summary.release == "Online Retail II" else ONLINE_RETAIL
    codes = ", ".join(f"{code} {n:,}" for code, n in summary.non_product_by_code.items()) or "none"
    return f"""# Provenance of this data directory

**Purchases are REAL. NPS, CSAT and CES responses are SIMULATED.**

## Real: customers, products, orders

Built from the real purchase history in `{summary.source}` (sha256 `{summary.source_sha256}`).

- Source: {source}: the order lines of a UK-based online retailer of gifts and homeware,
  {summary.first_order_date} to {summary.last_order_date}.
- Licence: {SOURCE_LICENSE}. Credit the source wherever results from it are shown.
- Cite: {SOURCE_CITATION}.

Not in the source, so not invented: age bands, brands and delivery dates are null. Categories are
derived from product descriptions by a keyword rule, prices are each product's median unit price, and
cancellations are applied as returns of the purchases they cancel (rules: docs/online-retail.md).

## Simulated: nps_responses, csat_responses, ces_responses

Drawn by `training.sources.feedback_model` (seed {summary.seed}) from the purchases above. The shop surveyed
no one: no score, comment or response time in these tables is a real customer's answer, and results
built on them are not findings about real customers' satisfaction.

## Set aside ({summary.lines_read:,} source lines read)

| source lines | count |
|---|---:|
| guest checkouts (no customer id) | {summary.guest_lines:,} |
| non-product codes (postage, fees, discounts, ...) | {summary.non_product_lines:,} |
| invalid (quantity of the wrong sign, price <= 0, unreadable value) | {summary.invalid_lines:,} |
| cancellations with no earlier purchase to return | {summary.unmatched_cancellation_lines:,} |

Non-product codes: {codes}.

## Written

| table | rows |
|---|---:|
| customers | {summary.customers:,} |
| products | {summary.products:,} |
| orders ({summary.invoices:,} invoices; {summary.returned_lines:,} lines returned) | {summary.order_lines:,} |
| nps_responses (simulated) | {summary.nps_responses:,} |
| csat_responses (simulated) | {summary.csat_responses:,} |
| ces_responses (simulated) | {summary.ces_responses:,} |

The same counts, machine-readable: `_import_report.json`.
"""


def format_summary(summary: ImportSummary) -> str:
    """A few lines for the terminal."""
    s = summary
    return "\n".join(
        [
            f"imported {s.source} ({s.release}): {s.lines_read:,} lines in {s.seconds:.1f}s",
            f"  kept: {s.purchase_lines:,} purchase lines, {s.matched_cancellation_lines:,} "
            f"cancellation lines applied as returns ({s.merged_duplicate_lines:,} repeated lines merged)",
            f"  set aside: {s.guest_lines:,} guest, {s.non_product_lines:,} non-product, "
            f"{s.invalid_lines:,} invalid, {s.unmatched_cancellation_lines:,} unmatched cancellation lines",
            f"  wrote: {s.customers:,} customers, {s.products:,} products, {s.order_lines:,} order "
            f"lines ({s.returned_lines:,} returned, {s.split_lines:,} purchase lines split)",
            f"  simulated: {s.nps_responses:,} NPS, {s.csat_responses:,} CSAT, {s.ces_responses:,} "
            f"CES responses (labelled in PROVENANCE.md)",
        ]
    )
