-- soak/mix.lua: wrk -s script mixing the three proxied URLs.
-- Per 10 requests: 6 x 1 KiB, 3 x 64 KiB, 1 x chunked (nginx ssi, no length).
-- Each thread counts non-2xx answers per epoch second (faults.sh reads them
-- in done() to check that failures fall only in the backend's down window).
local paths = { "/p/1k.bin", "/p/64k.bin", "/p/1k.bin", "/p/chunked/16k.txt",
                "/p/1k.bin", "/p/64k.bin", "/p/1k.bin", "/p/1k.bin",
                "/p/64k.bin", "/p/1k.bin" }
local only = os.getenv("SOAK_PATH")
local threads = {}
local i = 0
bad = {}

function setup(thread) table.insert(threads, thread) end

function request()
  i = i + 1
  if only and only ~= "" then return wrk.format("GET", only) end
  return wrk.format("GET", paths[(i % #paths) + 1])
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    local t = os.time()
    bad[t] = (bad[t] or 0) + 1
  end
end

function done(summary, latency, requests)
  local all = {}
  for _, th in ipairs(threads) do
    local b = th:get("bad")
    if b then for t, n in pairs(b) do all[t] = (all[t] or 0) + n end end
  end
  for t, n in pairs(all) do io.write(string.format("BAD %d %d\n", t, n)) end
end
