/**
 * The local actor runtime: contracts, refs, activations, mailboxes, turns, request
 * context, timers and the silo that hosts them.
 *
 * @since 0.1.0
 */
export * as Actor from "./Actor.ts"
export type { ActorRef, AnyActorRef } from "./ActorRef.ts"
export { type ActorAddress, formatAddress, maxIdLength } from "./ActorAddress.ts"
export {
  ActorContext,
  type ActorContextShape,
  type ChildOptions,
  type Termination,
  type TimerOptions
} from "./ActorContext.ts"
export * from "./ActorError.ts"
export * as ActorSchema from "./ActorSchema.ts"
export type { CallOptions } from "./CallOptions.ts"
export * as RequestContext from "./RequestContext.ts"
export * as Migration from "./Migration.ts"
export type { ActorDefaults, ActorTypeOptions, WhenFull } from "./ActorOptions.ts"
export { defaultActorDefaults } from "./ActorOptions.ts"
export * as Silo from "./Silo.ts"
