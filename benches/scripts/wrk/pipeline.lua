-- HTTP/1.1 pipelining for wrk: every write sends DEPTH `GET /` requests back to back, and
-- wrk writes the next batch once all DEPTH responses of the previous one have arrived.
--
--   wrk -t1 -c100 -d10s -s pipeline.lua http://127.0.0.1:8080/ -- 16
--   PIPELINE=16 wrk -t1 -c100 -d10s -s pipeline.lua http://127.0.0.1:8080/
--
-- DEPTH: the first script argument (after `--`), else $PIPELINE, else 16. The path is the
-- one of the URL, the Host header comes from the URL (wrk.format adds it).
--
-- wrk counts every response as a request, so Requests/sec is responses per second; its
-- latency figures are per batch (from the write of a batch to its last response).

local depth = 16
local batch

function init(args)
    local arg = args[1] or os.getenv("PIPELINE")
    if arg ~= nil and arg ~= "" then
        depth = tonumber(arg)
        if depth == nil or depth < 1 or depth ~= math.floor(depth) then
            error("pipeline.lua: the depth must be a positive integer, got '" .. arg .. "'")
        end
    end
    local one = wrk.format("GET", wrk.path)
    local parts = {}
    for i = 1, depth do
        parts[i] = one
    end
    batch = table.concat(parts)
end

function request()
    return batch
end
