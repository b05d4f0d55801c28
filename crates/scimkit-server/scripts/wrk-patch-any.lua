-- wrk script: PATCH any of the users whose ids SCIM_IDS lists (a Lua file returning
-- a table, as throughput.sh writes it), changing its displayName to a value no
-- request used before, so every request is a durable write. With SCIM_METHOD=GET it
-- reads the same users in the same order instead: the like-for-like read.
local token = os.getenv("SCIM_TOKEN") or "bench"
local ids = dofile(os.getenv("SCIM_IDS"))
local read = os.getenv("SCIM_METHOD") == "GET"
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
local n = 0
request = function()
    n = n + 1
    local id = ids[(n * 7919 + tid * 104729) % #ids + 1]
    if read then
        return wrk.format("GET", wrk.path .. "/" .. id, {
            ["Authorization"] = "Bearer " .. token,
        })
    end
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Name ' .. tostring(tid) .. '-' .. n .. '"}]}'
    return wrk.format("PATCH", wrk.path .. "/" .. id .. "?attributes=id", {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/scim+json",
    }, body)
end
