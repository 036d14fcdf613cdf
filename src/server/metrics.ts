// Basic counters for GET /metrics (Prometheus text format) and GET /health.
export class Metrics {
  readonly startedAt = Date.now();
  requests = new Map<string, number>();
  active = 0;
  waiting = 0;
  generations = 0;
  cancelled = 0;
  promptTokens = 0;
  completionTokens = 0;
  cacheHitTokens = 0;

  countRequest(route: string, status: number): void {
    const k = `route="${route}",status="${status}"`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  text(extra: Record<string, number> = {}): string {
    const lines = ['# TYPE dsv4_requests_total counter'];
    for (const [k, v] of this.requests) lines.push(`dsv4_requests_total{${k}} ${v}`);
    const gauges: Record<string, number> = {
      dsv4_active_requests: this.active,
      dsv4_waiting_generations: this.waiting,
      dsv4_generations_total: this.generations,
      dsv4_cancelled_generations_total: this.cancelled,
      dsv4_prompt_tokens_total: this.promptTokens,
      dsv4_completion_tokens_total: this.completionTokens,
      dsv4_prompt_cache_hit_tokens_total: this.cacheHitTokens,
      dsv4_uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
    };
    for (const [k, v] of Object.entries(extra)) gauges[`dsv4_engine_${k.replace(/[^a-zA-Z0-9_]/g, '_')}`] = v;
    for (const [k, v] of Object.entries(gauges)) lines.push(`${k} ${v}`);
    return lines.join('\n') + '\n';
  }
}
