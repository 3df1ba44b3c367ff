-- wrk script for bench/check-ab.mjs: a forward-auth check as nginx's auth_request sends it (the
-- nginx profile): X-Original-Method and X-Original-URI name the original request, the bearer
-- token from BENCH_AUTH. `done` prints one line `WRKJSON {...}` with the counts.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_AUTH")
wrk.headers["X-Original-Method"] = "GET"
wrk.headers["X-Original-URI"] = "/v1/models"
wrk.headers["Host"] = "inference.local"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\"requests\":%d,\"durationUs\":%d,\"errors\":%d,\"non2xx\":%d}\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status))
end
