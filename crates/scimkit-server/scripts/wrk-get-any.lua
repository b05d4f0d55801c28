-- wrk script: GET any of the users whose ids SCIM_IDS lists (a Lua file returning a
-- table, as scale.sh and throughput.sh write it), in the order wrk-patch-any.lua
-- PATCHes them: reads of the same rows as those writes, for a like-for-like ratio.
local token = os.getenv("SCIM_TOKEN") or "bench"
local ids = dofile(os.getenv("SCIM_IDS"))
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
local n = 0
request = function()
    n = n + 1
    local id = ids[(n * 7919 + tid * 104729) % #ids + 1]
    return wrk.format("GET", wrk.path .. "/" .. id, {
        ["Authorization"] = "Bearer " .. token,
    })
end
