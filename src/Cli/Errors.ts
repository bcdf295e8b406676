/**
 * How a `quark` command fails, each with its exit code, so a script can tell them apart:
 *
 * - 0: done;
 * - 1 `CommandFailed`: the command could not do what it was asked (a silo answered with an
 *   error, a file is in the way, a silo process did not start);
 * - 2: the command line is wrong (the help is printed, with what is wrong);
 * - 3 `NotFound`: what was named does not exist (a dead letter, a silo, a running dev
 *   cluster, a project file);
 * - 4 `Unreachable`: no silo answered at the endpoints URL.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"

/** @since 0.2.0 */
export class CommandFailed extends Schema.TaggedError<CommandFailed>()("CommandFailed", { message: Schema.String }) {}

/** @since 0.2.0 */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { message: Schema.String }) {}

/** @since 0.2.0 */
export class Unreachable extends Schema.TaggedError<Unreachable>()("Unreachable", { message: Schema.String }) {}

/** @since 0.2.0 */
export type QuarkCliError = CommandFailed | NotFound | Unreachable

/** @since 0.2.0 */
export const exitCodes = { ok: 0, failed: 1, usage: 2, notFound: 3, unreachable: 4 } as const

/** @since 0.2.0 */
export const exitCodeOf = (error: QuarkCliError): number =>
  error._tag === "NotFound" ? exitCodes.notFound : error._tag === "Unreachable" ? exitCodes.unreachable : exitCodes.failed
