-- wrk script for bench/bench_service.py: every request asks for a random customer C00000001..C01000000.
--   wrk -c32 -t1 -d12s -s bench/wrk_recommendations.lua http://127.0.0.1:PORT -- '/v1/customers/C%08d/recommendations'
-- Arguments after `--`: a path template with one %08d for the customer number (default: the
-- recommendations endpoint), the number of customers, a pause in milliseconds each connection
-- waits after a response before its next request (default none: as fast as the server answers),
-- the first customer number (default 1: customers first..first+customers-1), and a value for an
-- Authorization header (e.g. "Bearer KEY"; default none).
-- At the end one line `WRKJSON {...}` carries the numbers (latency in µs, pauses not included).

local template = "/v1/customers/C%08d/recommendations"
local customers = 1000000
local first = 1

function init(args)
  if args[1] ~= nil then
    template = args[1]
  end
  if args[2] ~= nil then
    customers = tonumber(args[2])
  end
  if args[3] ~= nil and tonumber(args[3]) > 0 then
    local pause = tonumber(args[3])
    -- wrk calls a global delay() (if defined) before each request of a connection
    delay = function() return pause end
  end
  if args[4] ~= nil then
    first = tonumber(args[4])
  end
  if args[5] ~= nil and args[5] ~= "" then
    wrk.headers["Authorization"] = args[5]
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  return wrk.format("GET", string.format(template, math.random(first, first + customers - 1)))
end

dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "") .. "wrk_report.lua")
