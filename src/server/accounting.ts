// Per-key token and cost accounting (§10) behind /user/balance (§7.2).
// Cost = hit × hit-price + miss × miss-price + completion × output-price, per 1M tokens; granted balance is
// consumed before topped-up balance (§7.2), and this server only grants.
import type { PriceEntry, ServerConfig } from './config.js';

export interface UsageCounts {
  promptTokens: number;
  completionTokens: number;
  cacheHitTokens: number;
  cacheMissTokens: number;
}

export interface KeyAccount {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cacheHitTokens: number;
  cacheMissTokens: number;
  cost: number;
}

export function costOf(price: PriceEntry, u: UsageCounts): number {
  return (u.cacheHitTokens * price.cacheHit + u.cacheMissTokens * price.cacheMiss + u.completionTokens * price.output) / 1e6;
}

export class Accounting {
  private readonly accounts = new Map<string, KeyAccount>();
  constructor(private readonly cfg: ServerConfig) {}

  account(key: string): KeyAccount {
    let a = this.accounts.get(key);
    if (!a) {
      a = { requests: 0, promptTokens: 0, completionTokens: 0, cacheHitTokens: 0, cacheMissTokens: 0, cost: 0 };
      this.accounts.set(key, a);
    }
    return a;
  }

  record(key: string, servedModel: string, u: UsageCounts): number {
    const a = this.account(key);
    const price = this.cfg.prices[servedModel] ?? { cacheHit: 0, cacheMiss: 0, output: 0 };
    const cost = costOf(price, u);
    a.requests++;
    a.promptTokens += u.promptTokens;
    a.completionTokens += u.completionTokens;
    a.cacheHitTokens += u.cacheHitTokens;
    a.cacheMissTokens += u.cacheMissTokens;
    a.cost += cost;
    return cost;
  }

  remaining(key: string): number {
    return this.cfg.initialBalance - this.account(key).cost;
  }

  /** §7.2 shape: amounts are strings with two decimals. */
  balance(key: string) {
    const left = Math.max(0, this.remaining(key));
    const s = left.toFixed(2);
    return {
      is_available: left > 0,
      balance_infos: [{ currency: this.cfg.currency, total_balance: s, granted_balance: s, topped_up_balance: '0.00' }],
    };
  }
}
