-- wrk script: PATCH a random user of the scale benchmark's 1,000,000 (ids as
-- seed-scale.sql writes them), changing its displayName every time, so that writers
-- contend for the database's commit, not for one row.
local token = os.getenv("SCIM_TOKEN") or "bench"
local n = 0
request = function()
    n = n + 1
    local id = string.format("00000000-0000-4000-8000-%012d", math.random(1, 1000000))
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Name ' .. n .. '"}]}'
    return wrk.format("PATCH", wrk.path .. "/Users/" .. id, {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/scim+json",
    }, body)
end
