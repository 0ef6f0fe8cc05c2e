-- wrk script for bench/bench_service.py: every request posts an anonymous cart of random products.
--   wrk -c32 -t1 -d12s -s bench/wrk_carts.lua http://127.0.0.1:PORT -- PRODUCTS_FILE 5 "Bearer KEY"
-- Arguments after `--`: a file of product ids (one per line), the products per cart (default 5),
-- and a value for an Authorization header (default none). Each cart is drawn afresh (distinct
-- products). At the end one line `WRKJSON {...}` carries the numbers, as wrk_recommendations.lua.

local products = {}
local size = 5

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      products[#products + 1] = line
    end
  end
  if args[2] ~= nil then
    size = tonumber(args[2])
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[3] ~= nil and args[3] ~= "" then
    wrk.headers["Authorization"] = args[3]
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local chosen, ids = {}, {}
  while #ids < size do
    local i = math.random(1, #products)
    if not chosen[i] then
      chosen[i] = true
      ids[#ids + 1] = '"' .. products[i] .. '"'
    end
  end
  local body = '{"product_ids":[' .. table.concat(ids, ",") .. '],"limit":10}'
  return wrk.format(nil, "/v1/recommendations", nil, body)
end

dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "") .. "wrk_report.lua")
