-- wrk script: PATCH a user back and forth between two displayNames (each request changes it).
-- wrk -t2 -c32 -d20s -s .ci/wrk-patch.lua http://127.0.0.1:8080/scim/v2/Users/ID
local token = os.getenv("SCIM_TOKEN") or "bench"
local n = 0
request = function()
    n = n + 1
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Name ' .. (n % 2) .. '"}]}'
    return wrk.format("PATCH", nil, {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/scim+json",
    }, body)
end
