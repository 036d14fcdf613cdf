// Prefix-cache isolation between tenants (spec §9.4: "each user's cache is isolated and logically invisible
// to others"): with authentication on, every cache scope carries the API key's tenant id, plus the request's
// user_id when given. The tenant id is a hash: the key itself never reaches the engine, its disk snapshots
// (whose headers store the scope), logs or metrics.
import { createHash } from 'node:crypto';

/** The tenant id of an authenticated API key (128 bits of a domain-separated SHA-256). */
export function tenantId(apiKey: string): string {
  return createHash('sha256').update('dsv4 tenant\0').update(apiKey).digest('hex').slice(0, 32);
}

/**
 * The engine's cache scope for a request. `tenant` undefined (server without keys) keeps the user_id-only
 * scope (undefined = the shared default scope); the tenant id has a fixed length, so `key:<id>/<user_id>`
 * cannot be confused between tenants.
 */
export function cacheScope(tenant: string | undefined, userId: string | undefined): string | undefined {
  if (tenant === undefined) return userId;
  return userId === undefined ? `key:${tenant}` : `key:${tenant}/user:${userId}`;
}
