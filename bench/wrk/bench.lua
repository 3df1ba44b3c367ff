-- wrk script for npm run bench. Configured by environment variables, read when the script loads
-- (wrk decides whether a script has `request` and `delay` before any `init` runs):
--   BENCH_AUTH         a bearer token sent with every request (the request stays pre-formatted)
--   BENCH_DELAY_MS     mean pause of each connection before its next request (paced load:
--                      rate = connections / pause); uniform in [0, 2 x mean] so connections drift apart
--   BENCH_TOKENS_FILE  one bearer token per line; each request takes the next one (per thread,
--                      threads start at different offsets)
--   BENCH_BODY_FILE    send every request as a POST with this file as its JSON body
-- `done` prints one line `WRKJSON {...}` with counts, errors and latency percentiles in microseconds.

local auth = os.getenv("BENCH_AUTH")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
local tokens_file = os.getenv("BENCH_TOKENS_FILE")
local body_file = os.getenv("BENCH_BODY_FILE")

if body_file ~= nil and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

if delay_ms ~= nil then
  local spread = math.floor(delay_ms * 2 + 0.5)
  function delay()
    return math.random(0, spread)
  end
end

if tokens_file ~= nil and tokens_file ~= "" then
  local tokens = {}
  local position = 1

  function init(args)
    for line in io.lines(tokens_file) do
      if line ~= "" then table.insert(tokens, line) end
    end
    local total = tonumber(os.getenv("BENCH_THREADS") or "1")
    position = math.floor(#tokens * (thread_index or 0) / total) + 1
  end

  function request()
    local token = tokens[position]
    position = position + 1
    if position > #tokens then position = 1 end
    return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token })
  end
end

function done(summary, latency, requests)
  local p = function(q) return latency:percentile(q) end
  io.write(string.format(
    'WRKJSON {"requests":%d,"durationUs":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latencyUs":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency.mean, latency.stdev, latency.max, p(50), p(90), p(99), p(99.9)))
end
