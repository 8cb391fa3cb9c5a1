-- wrk script: POSTs the JSON bodies of $WRK_BODIES (one per line; one is fine) in turn to
-- $WRK_PATH (default /v1/completions), each connection thread starting at its own offset, and
-- prints one JSON line of results at the end.
-- $WRK_ADDRS ("host:port,host:port"), when set, spreads the threads over those servers
-- (thread i talks to server i mod n), so one wrk can load several engines directly.
local threads = {}
local counter = 0

function setup(thread)
  local addrs = os.getenv("WRK_ADDRS")
  if addrs and addrs ~= "" then
    local list = {}
    for a in string.gmatch(addrs, "[^,]+") do table.insert(list, a) end
    local host, port = string.match(list[(counter % #list) + 1], "^(.*):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
  end
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests = {}
local next_request = 1

function init(args)
  local path = os.getenv("WRK_PATH") or "/v1/completions"
  local headers = {["Content-Type"] = "application/json"}
  for line in io.lines(os.getenv("WRK_BODIES")) do
    if line ~= "" then
      table.insert(requests, wrk.format("POST", path, headers, line))
    end
  end
  next_request = (id * 7919) % #requests + 1
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.2f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,' ..
    '"errors":%d,"non_2xx":%d}\n',
    summary.requests, s, summary.requests / s, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
