/**
 * Sequence tokens: what a provider assigns each event it accepts. A token is two decimal
 * integers, `"<milliseconds>-<sequence>"` (a Redis Streams entry id; the memory provider
 * makes them the same way), and tokens of one stream only ever increase. A subscriber that
 * may see an event twice (at-least-once delivery) keeps the last token it handled per stream
 * and skips any token that is not after it.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"

/**
 * A token given where a read or a subscription starts is not one (see {@link parse}).
 *
 * @since 0.2.0
 */
export class InvalidStreamToken extends Schema.TaggedError<InvalidStreamToken>()("InvalidStreamToken", {
  token: Schema.String
}) {
  override get message(): string {
    return `not a stream token: ${JSON.stringify(this.token)} (expected "<milliseconds>-<sequence>")`
  }
}

/**
 * The two parts of a token, or `undefined` if it is not one.
 *
 * @since 0.2.0
 */
export const parse = (token: string): readonly [number, number] | undefined => {
  const dash = token.indexOf("-")
  if (dash <= 0 || dash === token.length - 1) return undefined
  const millis = Number(token.slice(0, dash))
  const sequence = Number(token.slice(dash + 1))
  return Number.isSafeInteger(millis) && millis >= 0 && Number.isSafeInteger(sequence) && sequence >= 0
    ? [millis, sequence]
    : undefined
}

/**
 * Orders two tokens: negative if `a` came first, 0 if equal, positive if `a` came later.
 * Throws on a string that is not a token.
 *
 * @since 0.2.0
 */
export const compare = (a: string, b: string): number => {
  const left = parse(a)
  const right = parse(b)
  if (left === undefined || right === undefined) throw new RangeError(`not a stream token: ${left === undefined ? a : b}`)
  return left[0] !== right[0] ? left[0] - right[0] : left[1] - right[1]
}

/**
 * Whether `token` comes after `last` (always, when `last` is `undefined`): the
 * de-duplication test of an at-least-once subscriber.
 *
 * @since 0.2.0
 */
export const isAfter = (token: string, last: string | undefined): boolean => last === undefined || compare(token, last) > 0

/**
 * The time part of a token (when the provider accepted the event, epoch milliseconds).
 *
 * @since 0.2.0
 */
export const millisOf = (token: string): number => parse(token)?.[0] ?? Number.NaN
