/**
 * `@witness/sdk`: the TypeScript client for witness, the human-in-the-loop
 * decision service. Start with {@link WitnessClient}.
 *
 * @example
 * ```ts
 * import { WitnessClient, answerHint } from "@witness/sdk";
 *
 * const witness = new WitnessClient({ baseUrl: "http://127.0.0.1:50051", principal: "deployer" });
 * const decision = await witness.ask("deploy.production", { service: "api", version: "1.4.2" }, {
 *   authorizedRoles: ["sre"],
 *   onCreated: (d) => console.log(answerHint(d)), // its id and how to answer it
 * });
 * if (decision.status !== "APPROVED") throw new Error(`deploy not approved: ${decision.status}`);
 * ```
 *
 * @packageDocumentation
 */
export {
  WitnessClient,
  type WitnessClientOptions,
  type AskOptions,
  type AskResult,
  type AnswerOptions,
  type AnswerResult,
  type ListOptions,
  type ListPage,
} from "./client.js";
export type { StreamOptions } from "./streams.js";
export type { RetryOptions } from "./backoff.js";
export type { ContextSource } from "./context.js";
export {
  WitnessError,
  InvalidArgumentError,
  NotFoundError,
  FailedPreconditionError,
  AlreadyExistsError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  TokenProviderError,
  ResourceExhaustedError,
  DeadlineExceededError,
  toWitnessError,
  type WitnessErrorCode,
} from "./errors.js";
export {
  answerHint,
  isClosed,
  jsonToValue,
  valueToJson,
  decisionFromProto,
  eventFromProto,
  type Answer,
  type AnswerHintOptions,
  type AnswerOutcome,
  type Decision,
  type DecisionEvent,
  type DecisionPolicy,
  type DecisionStatus,
  type EventType,
  type JsonValue,
  type Receipt,
  type TokenProvider,
  type Verdict,
} from "./types.js";
/** The generated protobuf-es messages and service descriptor (`witness.v1`). */
export * as pb from "./gen/witness/v1/witness_pb.js";
