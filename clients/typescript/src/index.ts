export { Behest, normalizeBaseURL } from "./client.js";
export type {
  BehestOptions,
  RequestOptions,
  MintParams,
  TokenBundle,
  RevokeParams,
  RevokeResult,
  UsageGroupBy,
  UsageParams,
  UsageRow,
  UsageList,
} from "./client.js";
export { BehestError } from "./errors.js";
export { createTokenProvider } from "./token-provider.js";
export type { ExpiringToken, TokenProvider, TokenProviderOptions } from "./token-provider.js";
export { verifyWebhookSignature } from "./webhooks.js";
export type { BudgetAlert, VerifyOptions } from "./webhooks.js";
