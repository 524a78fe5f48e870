-- wrk script: POST a small JSON message to an agent's ask route (the reply is the body).
-- Usage: wrk -t1 -c64 -d10s --latency -s service/bench/ask.lua http://127.0.0.1:7701/v1/agents/echo/ask
-- With a token: SWITCHYARD_TOKEN=secret wrk ... (sent as Authorization: Bearer).
wrk.method = "POST"
wrk.body = '{"user":"ada","n":1}'
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("SWITCHYARD_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
-- No response() callback: it would make wrk parse every body in Lua and
-- measure itself. wrk prints "Non-2xx or 3xx responses" when there are any.
