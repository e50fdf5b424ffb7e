/**
 * Lua scripts run atomically inside Redis: one round trip per frame event, and no window in which
 * another instance sees an event id without its replay entry or its counter.
 */
export const REDIS_SCRIPTS = {
  // KEYS: record, index, owner's set; ARGV: now, ttl, clientId, max sessions (0 = any), max per
  // owner (0 = any), owner ('' = none), door, config, configVersion, createdAtMs, lastActivityMs.
  // 1 = created, -1 = the store is full, -2 = the owner is at its limit. The owner's set may hold
  // ids of sessions that ended (delete does not know the owner): they are dropped here, where the
  // index says they are gone.
  hsCreate: {
    numberOfKeys: 3,
    lua: `
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local maxSessions = tonumber(ARGV[4])
if maxSessions > 0 and redis.call('ZCARD', KEYS[2]) >= maxSessions then return -1 end
if ARGV[6] ~= '' then
  local maxOwned = tonumber(ARGV[5])
  if maxOwned > 0 then
    local owned = 0
    for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
      local until_ms = redis.call('ZSCORE', KEYS[2], id)
      if until_ms and tonumber(until_ms) > now then owned = owned + 1 else redis.call('SREM', KEYS[3], id) end
    end
    if owned >= maxOwned then return -2 end
  end
  redis.call('SADD', KEYS[3], ARGV[3])
end
redis.call('HSET', KEYS[1], 'owner', ARGV[6], 'door', ARGV[7], 'config', ARGV[8], 'configVersion', ARGV[9],
  'createdAtMs', ARGV[10], 'lastActivityMs', ARGV[11])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
return 1`,
  },
  // KEYS: record, index, owner's set, counters, seq; ARGV: lastActivityMs, ttl, clientId, owner, door,
  // config, configVersion, createdAtMs, last event id, track-id blocks. A live session written back
  // after Redis lost it: 0 = the record was there (nothing written), 1 = restored.
  hsRestore: {
    numberOfKeys: 5,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[4], 'door', ARGV[5], 'config', ARGV[6], 'configVersion', ARGV[7],
  'createdAtMs', ARGV[8], 'lastActivityMs', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + ttl, ARGV[3])
if ARGV[4] ~= '' then redis.call('SADD', KEYS[3], ARGV[3]) end
local blocks = tonumber(ARGV[10])
if blocks > tonumber(redis.call('HGET', KEYS[4], 'trackIdBlocks') or '0') then
  redis.call('HSET', KEYS[4], 'trackIdBlocks', blocks)
  redis.call('PEXPIRE', KEYS[4], ttl)
end
if tonumber(ARGV[9]) > tonumber(redis.call('GET', KEYS[5]) or '0') then
  redis.call('SET', KEYS[5], ARGV[9], 'PX', ttl)
end
return 1`,
  },
  // KEYS: record, counters, seq, replay, latency, index; ARGV: now, ttl, received, clientId
  hsTouch: {
    numberOfKeys: 6,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'lastActivityMs', ARGV[1])
if tonumber(ARGV[3]) > 0 then redis.call('HINCRBY', KEYS[2], 'received', ARGV[3]) end
for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
redis.call('ZADD', KEYS[6], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
return 1`,
  },
  // KEYS: record; ARGV: expected configVersion, new config JSON. 0 = gone, -1 = changed meanwhile.
  hsSetConfig: {
    numberOfKeys: 1,
    lua: `
local v = redis.call('HGET', KEYS[1], 'configVersion')
if not v then return 0 end
if v ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'config', ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'configVersion', 1)`,
  },
  // KEYS: seq, replay, counters, channel; ARGV: payload, counter field or '', ttl, replay window
  // (events), replay window (bytes). The replay list's size is kept in the counters hash
  // (`replayBytes`), so trimming it by bytes reads only the entries it drops; the newest stays.
  hsPublish: {
    numberOfKeys: 4,
    lua: `
local id = redis.call('INCR', KEYS[1])
local entry = id .. '|' .. ARGV[1]
local len = redis.call('RPUSH', KEYS[2], entry)
local bytes = redis.call('HINCRBY', KEYS[3], 'replayBytes', #entry)
local maxLen = tonumber(ARGV[4])
local maxBytes = tonumber(ARGV[5])
while len > 1 and (len > maxLen or bytes > maxBytes) do
  local old = redis.call('LPOP', KEYS[2])
  bytes = redis.call('HINCRBY', KEYS[3], 'replayBytes', -#old)
  len = len - 1
end
if ARGV[2] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[2], 1) end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
redis.call('PUBLISH', KEYS[4], entry)
return id`,
  },
} as const;
