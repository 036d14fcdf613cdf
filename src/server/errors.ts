// DeepSeek's error envelope (spec §11.1): {"error":{"message","type","param":null,"code"}}, used on every
// endpoint including /anthropic (§8.5). `code` is almost always "invalid_request_error".

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = 'invalid_request_error',
    readonly code: string = 'invalid_request_error',
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: null; code: string } } {
    return { error: { message: this.message, type: this.type, param: null, code: this.code } };
  }
}

/** 400 with the serde-style text DeepSeek returns for schema violations (§2.3, §11.1). */
export function deserializeError(path: string, detail: string, column = 1): ApiError {
  const where = path ? `${path}: ` : '';
  return new ApiError(
    400,
    `Failed to deserialize the JSON body into the target type: ${where}${detail} at line 1 column ${column}`,
  );
}

export function invalidRequest(message: string): ApiError {
  return new ApiError(400, message);
}

export function authError(key: string | null): ApiError {
  const tail = key ? key.slice(-4) : '';
  return new ApiError(401, `Authentication Fails, Your api key: ****${tail} is invalid`, 'authentication_error');
}

export const insufficientBalance = (): ApiError => new ApiError(402, 'Insufficient Balance', 'unknown_error');

export function concurrencyError(current: number, limit: number): ApiError {
  return new ApiError(
    429,
    `Your current concurrency is ${current}, which exceeds your concurrency limit of ${limit}. Please retry later.`,
    'rate_limit_error',
  );
}

export const overloaded = (): ApiError =>
  new ApiError(503, 'Server overloaded, please retry shortly.', 'server_overloaded_error', 'server_overloaded');

export const notFound = (path: string): ApiError => new ApiError(404, `Not Found: ${path}`, 'not_found_error', 'not_found');

export const internalError = (msg = 'Internal server error'): ApiError =>
  new ApiError(500, msg, 'server_error', 'internal_server_error');

export function maxTokensRange(max: number): ApiError {
  return invalidRequest(`Invalid max_tokens value, the valid range of max_tokens is [1, ${max}]`);
}

export function contextOverflow(limit: number, prompt: number, completion: number): ApiError {
  return invalidRequest(
    `This model's maximum context length is ${limit} tokens. However, you requested ${prompt + completion} tokens ` +
      `(${prompt} in the messages, ${completion} in the completion). Please reduce the length of the messages or completion.`,
  );
}
