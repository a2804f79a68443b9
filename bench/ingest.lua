-- wrk script for bizrelay's webhook: every request is a fresh NHN-style POST whose hooks all
-- have unique hookIds (duplicates are cheaper to ingest, so reusing ids would flatter results).
--
-- Environment:
--   BENCH_PREFIX  unique per run (hookIds are "<prefix>-<thread>-<request>-<hook>")
--   BENCH_HOOKS   hooks per POST (default 1)
--   BENCH_CODES   comma-separated resultCodes, cycled (default "1000": success, unrouted)
--   BENCH_PATH    request path (default /hooks/bizmessage)
--   BENCH_IDS     "counting" (default: ids count up, so the dedup index's writes stay on a few
--                 pages) or "spread" (a hashed prefix spreads them over the key space, as
--                 independent senders' ids would be; the store's dedup costs far more)
--
-- done() prints one machine-readable line starting with "BENCH " for bench/run.

local prefix = os.getenv("BENCH_PREFIX") or tostring(os.time())
local hooks_per_post = tonumber(os.getenv("BENCH_HOOKS") or "1")
local path = os.getenv("BENCH_PATH") or "/hooks/bizmessage"
local codes = {}
for c in string.gmatch(os.getenv("BENCH_CODES") or "1000", "[^,]+") do
  codes[#codes + 1] = c
end
local n_codes = #codes
local spread = os.getenv("BENCH_IDS") == "spread"

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

local headers = { ["Content-Type"] = "application/json;charset=UTF-8" }
local counter = 0

-- One message-result hook as NHN sends it (about 430 bytes).
local hook_fmt = '{"hookId":"%s","kakaoMessageType":"ALIMTALK_NORMAL",'
  .. '"requestId":"%s","recipientSeq":%d,'
  .. '"requestDate":"2026-11-28 10:14:55","createDate":"2026-11-28 10:14:55",'
  .. '"receiveDate":"2026-11-28 10:14:57","recipientNo":"01012345678","resultCode":"%s",'
  .. '"senderGroupingKey":"order-service","recipientGroupingKey":"user-%d",'
  .. '"_links":{"self":{"href":"https://api-alimtalk.cloud.toast.com/alimtalk/v2.3/appkeys/'
  .. 'Xk2abcDEF9tq/messages/%s/%d"}}}'

local function body(n)
  local base = prefix .. "-" .. tostring(tid or 1) .. "-" .. n
  local request_id = string.format("20261128101455%08d", n % 100000000)
  local parts = {}
  for i = 1, hooks_per_post do
    local code = codes[((n + i) % n_codes) + 1]
    local id = base .. "-" .. i
    if spread then
      -- Knuth's multiplicative hash of (thread, request, hook): unique, in no useful order.
      local k = ((tid or 1) * 1000003 + n * 1009 + i) % 4294967296
      id = string.format("%08x", (k * 2654435761) % 4294967296) .. "-" .. id
    end
    parts[i] = string.format(hook_fmt, id, request_id, i, code, i, request_id, i)
  end
  return '{"hooksId":"' .. base .. '","webhookConfigId":"wcf-91aa",'
    .. '"productName":"KakaoTalk Bizmessage","appKey":"Xk2abcDEF9tq",'
    .. '"event":"MESSAGE_RESULT_UPDATE","hooks":[' .. table.concat(parts, ",") .. ']}'
end

function request()
  counter = counter + 1
  return wrk.format("POST", path, headers, body(counter))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d body_bytes=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, #body(12345)))
end
