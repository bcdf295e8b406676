/**
 * The codecs of one message for the wire: its payload, its reply and its errors, built once
 * per message from the contract's schemas and cached. A call that stays on its silo never
 * touches them; a remote call encodes once each way.
 *
 * A failure reply carries one leading byte that says whose error follows: 0, the message's
 * declared error (its `error` schema); 1, one of Quark's own (`CallErrorSchema`: a mailbox
 * full, a deadlock, an unknown message...), so both kinds arrive as the typed values the
 * caller would have seen locally.
 *
 * @internal
 */
import { Schema } from "effect"
import { CallErrorSchema, callErrorClasses } from "../../Actor/ActorError.ts"
import type { MessageEntry } from "../../Actor/internal/HostedType.ts"
import { type PayloadCodec, payloadCodec } from "../../Transport/Envelope.ts"

/** @internal */
export interface MessageCodec {
  readonly payload: PayloadCodec<unknown>
  readonly success: PayloadCodec<unknown>
  readonly error: PayloadCodec<unknown>
}

const empty = new Uint8Array(0)

/** `Schema.Void` (a message without payload, a reply without value) travels as no bytes. */
const voidCodec: PayloadCodec<unknown> = { encode: () => empty, encodeText: () => "", decode: () => undefined }

const codecFor = (schema: Schema.Top): PayloadCodec<unknown> =>
  schema === Schema.Void || schema === Schema.Undefined ?
    voidCodec :
    payloadCodec(schema as Schema.Codec<unknown, unknown>)

const cache = new WeakMap<MessageEntry, MessageCodec>()

/** The codecs of `entry`, built on first use. @internal */
export const codecOf = (entry: MessageEntry): MessageCodec => {
  let codec = cache.get(entry)
  if (codec === undefined) {
    codec = {
      payload: codecFor(entry.payloadSchema),
      success: codecFor(entry.successSchema),
      error: codecFor(entry.errorSchema)
    }
    cache.set(entry, codec)
  }
  return codec
}

/** Whether `error` is one of Quark's own call errors (as opposed to a message's declared error). @internal */
export const isQuarkError = (error: unknown): boolean => callErrorClasses.some((errorClass) => error instanceof errorClass)

const quarkCodec = payloadCodec(CallErrorSchema)

const prefixed = (tag: number, bytes: Uint8Array): Uint8Array => {
  const out = new Uint8Array(bytes.length + 1)
  out[0] = tag
  out.set(bytes, 1)
  return out
}

/** Encodes a Quark call error as failure-reply bytes. @internal */
export const encodeQuarkError = (error: typeof CallErrorSchema.Type): Uint8Array => prefixed(1, quarkCodec.encode(error))

/**
 * Encodes the failure of a turn as failure-reply bytes. Throws when a declared error does
 * not encode with the message's error schema.
 *
 * @internal
 */
export const encodeFailure = (entry: MessageEntry | undefined, error: unknown): Uint8Array =>
  entry === undefined || isQuarkError(error) ?
    encodeQuarkError(error as typeof CallErrorSchema.Type) :
    prefixed(0, codecOf(entry).error.encode(error))

/** Decodes failure-reply bytes. Throws when they do not decode. @internal */
export const decodeFailure = (entry: MessageEntry, bytes: Uint8Array): unknown => {
  const body = bytes.subarray(1)
  switch (bytes[0]) {
    case 0:
      return codecOf(entry).error.decode(body)
    case 1:
      return quarkCodec.decode(body)
    default:
      throw new Error(`unknown failure kind ${bytes[0]}`)
  }
}
