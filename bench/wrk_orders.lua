-- wrk script for bench/bench_order_intake.py: every request POSTs a batch of order lines to a path
-- (default /v1/orders), each line with an id no other line of the run has.
--   wrk -c8 -t8 -d10s -s bench/wrk_orders.lua http://127.0.0.1:PORT -- PATH BATCH CUSTOMERS PRODUCTS TAG ORDERED_AT
-- Customers are C00000001..C<CUSTOMERS>, products P000001..P<PRODUCTS>, picked at random.
-- At the end one line `WRKJSON {...}` carries the numbers (latency in µs).

local path, batch, customers, products, tag = "/v1/orders", 100, 1000, 100, "bench"
local ordered_at = "2025-12-31T12:00:00Z"
local counter = 0
accepted, duplicates = 0, 0  -- globals: `done` reads them from each thread
local threads = {}

-- Each thread gets its number as the global `thread_id` (so line ids differ between threads) and
-- reports its counts back through globals that `done` (run in the main state) reads.
function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  path = args[1] or path
  batch = tonumber(args[2] or batch)
  customers = tonumber(args[3] or customers)
  products = tonumber(args[4] or products)
  tag = (args[5] or tag) .. "-" .. thread_id
  ordered_at = args[6] or ordered_at
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  math.randomseed(os.time() + thread_id * 7919)
end

function request()
  counter = counter + 1
  local order = tag .. "-" .. counter
  local parts = {}
  for i = 1, batch do
    parts[i] = string.format(
      '{"line_id":"%s-%d","order_id":"%s","customer_id":"C%08d","product_id":"P%06d",'
        .. '"quantity":%d,"unit_price":%.2f,"ordered_at":"%s","status":"placed"}',
      order, i, order, math.random(1, customers), math.random(1, products),
      math.random(1, 3), math.random(100, 9999) / 100, ordered_at)
  end
  return wrk.format(nil, path, nil, "[" .. table.concat(parts, ",") .. "]")
end

function response(status, headers, body)
  local a, d = string.match(body, '"accepted":(%d+),"duplicates":(%d+)')
  if a ~= nil then
    accepted = accepted + tonumber(a)
    duplicates = duplicates + tonumber(d)
  end
end

function done(summary, latency, requests)
  local a, d = 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    d = d + thread:get("duplicates")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"accepted":%d,"duplicates":%d,"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    a, d, summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
