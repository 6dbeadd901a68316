-- Every request carries a token never sent before. The session service
-- (bench/sessionsvc) accepts any token with the "bench-" prefix, so each
-- one is valid and costs session_auth one session-service call.
-- The first script argument makes tokens unique across runs.
local threads = 0

function setup(thread)
	threads = threads + 1
	thread:set("tid", threads)
end

local prefix
local counter = 0

function init(args)
	prefix = "bench-cold-" .. (args[1] or "run") .. "-" .. tostring(tid) .. "-"
end

function request()
	counter = counter + 1
	return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. prefix .. counter })
end
