"""The Redis side of leases: key names and the Lua scripts that change them atomically.

lease:{venue:SYMBOL}        "<instance_id>:<token>" while an instance owns the symbol; PX ttl
lease_token:{venue:SYMBOL}  the fencing token counter: INCR on every acquisition, never reset
lease_instances             sorted set: instance_id scored by its heartbeat's expiry (ms,
                            the Redis server's clock, so no instance's own clock matters)

The braces are hash tags: a lease and its counter are in one slot, as a script needs.
A value names the instance and the acquisition (its token), so a renewal, a release or a
fenced command by a previous owner of the same instance never passes for the current one.
"""

from __future__ import annotations

INSTANCES_KEY = "lease_instances"
FENCED = b"FENCED"  # FENCE's reply when the lease is not (or no longer) the caller's


def lease_key(exchange: str, symbol: str) -> str:
    return f"lease:{{{exchange}:{symbol}}}"


def token_key(exchange: str, symbol: str) -> str:
    return f"lease_token:{{{exchange}:{symbol}}}"


# KEYS: lease, token counter. ARGV: instance id, ttl ms. The new token, or 0 when held.
ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
"""

# KEYS: lease. ARGV: value, ttl ms. 1 when renewed, 0 when the lease is not ours.
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lease. ARGV: value. 1 when released, 0 when it was not ours (any more).
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: instances. ARGV: instance id, ttl ms. The number of live instances, this one counted.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: lease. ARGV: value, then one command and its arguments. The command's reply when
# the lease holds the value, else the status FENCED (the command is not run). Redis runs a
# script alone, so nothing changes the lease between the check and the command.
# On a single Redis the command may name other keys (the symbol's market_data key, the
# spool streams); a Redis Cluster refuses keys of other slots in a script (CROSSSLOT), so
# there the check cannot go with the command: see FencedSender.
FENCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.status_reply('FENCED') end
return redis.call(unpack(ARGV, 2))
"""
