-- The `done` of the benches' wrk scripts (wrk_recommendations.lua, wrk_carts.lua): one line
-- `WRKJSON {...}` with the run's numbers (latency in µs), which the Python side parses.
-- A script loads it from beside itself:
--   dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "") .. "wrk_report.lua")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,'
      .. '"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
