-- wrk script: PATCH one user, changing its displayName on every request (each value
-- is new: the thread's number and its counter), so every request is a durable write.
-- wrk -t2 -c32 -d20s -s .ci/wrk-patch.lua http://127.0.0.1:8080/scim/v2/Users/ID
local token = os.getenv("SCIM_TOKEN") or "bench"
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
local n = 0
request = function()
    n = n + 1
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Name ' .. tostring(tid) .. '-' .. n .. '"}]}'
    return wrk.format("PATCH", nil, {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/scim+json",
    }, body)
end
