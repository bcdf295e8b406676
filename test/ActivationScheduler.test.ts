/**
 * The activation's scheduler as a state machine, driven synchronously: no silo, no fiber.
 * A recording host stands in for the router, so each test sees exactly which effects the
 * activation asked for (a drainer, finalizers, a supervisor) and when.
 */
import { Effect, type Exit } from "effect"
import { assert, describe, it } from "vitest"
import type { CallError } from "../src/Actor/ActorError.ts"
import { defaultActorDefaults } from "../src/Actor/ActorOptions.ts"
import { Activation } from "../src/Actor/internal/Activation.ts"
import type { ActivationHost } from "../src/Actor/internal/ActivationHost.ts"
import { ActivationState, granted } from "../src/Actor/internal/ActivationState.ts"
import { resolveOptions } from "../src/Actor/internal/HostedType.ts"
import type { LocalRouter } from "../src/Actor/internal/LocalRouter.ts"
import { type MessageInfo, Turn, TurnKind, TurnState } from "../src/Actor/internal/Turn.ts"
import { TypeSlot } from "../src/Actor/internal/TypeSlot.ts"
import { cycleFrom, markBlocked } from "../src/Actor/internal/WaitGraph.ts"
import * as Failure from "../src/Supervision/Failure.ts"

class RecordingHost implements ActivationHost {
  readonly calls: Array<string> = []
  startDrainer(act: Activation, _first: Turn) {
    this.calls.push(`drainer ${act.id}`)
  }
  runBeside(turn: Turn) {
    this.calls.push(`beside ${turn.activation!.id}:${turn.info!.tag}`)
  }
  finishDeactivation(act: Activation) {
    this.calls.push(`finish ${act.id}`)
  }
  failed(act: Activation) {
    this.calls.push(`failed ${act.id}`)
  }
  supervise(act: Activation) {
    this.calls.push(`supervise ${act.id}`)
  }
  activate(act: Activation) {
    this.calls.push(`activate ${act.id}`)
  }
  closeScope(_act: Activation, _exit: Exit.Exit<unknown, unknown>) {
    return Effect.void
  }
  stopped(act: Activation) {
    this.calls.push(`stopped ${act.id}`)
  }
  retire(act: Activation, error: CallError) {
    this.calls.push(`retire ${act.id} ${error._tag}`)
  }
}

const message = (tag: string, flags: Partial<MessageInfo> = {}): MessageInfo => ({
  tag,
  readOnly: false,
  interleave: false,
  keepAlive: true,
  ...flags
})
const Write = message("Write")
const Read = message("Read", { readOnly: true })

const setup = (...ids: Array<string>) => {
  const host = new RecordingHost()
  const slot = new TypeSlot("T", host as unknown as LocalRouter)
  slot.options = resolveOptions({}, defaultActorDefaults)
  const acts = ids.map((id) => {
    const act = new Activation(slot, id, id)
    act.activated({}, 0)
    return act
  })
  return { host, acts }
}

/** A message sent as the router would: started at once if admitted, else queued. */
const send = (act: Activation, kind: TurnKind, info: MessageInfo, outer?: Turn): Turn => {
  const turn = Turn.message(kind, act, outer, info, undefined)
  if (act.phase === ActivationState.Active && act.admits(info, outer)) {
    if (kind === TurnKind.Ask) act.begin(turn)
    else act.startOneWay(turn)
  } else {
    act.enqueue(turn)
    if (kind === TurnKind.Ask) markBlocked(act, outer)
  }
  return turn
}
const ask = (act: Activation, info: MessageInfo, outer?: Turn) => send(act, TurnKind.Ask, info, outer)

describe("Activation scheduler (synchronous)", () => {
  it("runs one exclusive turn at a time and grants the queue in FIFO order", () => {
    const { acts: [a] } = setup("a")
    const first = ask(a!, Write)
    const second = ask(a!, Write)
    const third = ask(a!, Read)
    assert.strictEqual(first.state, TurnState.Running)
    assert.deepStrictEqual([second.state, third.state, a!.mailboxDepth], [TurnState.Queued, TurnState.Queued, 2])
    a!.end(first)
    assert.strictEqual(second.outcome, granted)
    assert.strictEqual(third.state, TurnState.Queued, "a read waits behind a running write")
    a!.end(second)
    assert.strictEqual(third.outcome, granted)
    assert.strictEqual(a!.mailbox, undefined, "an empty mailbox is released")
  })

  it("runs read-only turns side by side; a write waits for them, and later reads wait behind it", () => {
    const { acts: [a] } = setup("a")
    const r1 = ask(a!, Read)
    const r2 = ask(a!, Read)
    const w = ask(a!, Write)
    const r3 = ask(a!, Read)
    assert.deepStrictEqual([r1.state, r2.state], [TurnState.Running, TurnState.Running])
    assert.deepStrictEqual([w.state, r3.state], [TurnState.Queued, TurnState.Queued])
    a!.end(r1)
    assert.strictEqual(w.state, TurnState.Queued)
    a!.end(r2)
    assert.deepStrictEqual([w.outcome, r3.outcome], [granted, undefined])
    a!.end(w)
    assert.strictEqual(r3.outcome, granted)
  })

  it("starts one drainer for a one-way turn, which takes the one-way turns behind it straight from the mailbox", () => {
    const { acts: [a], host } = setup("a")
    const first = send(a!, TurnKind.Tell, Write)
    const second = send(a!, TurnKind.Tell, Write)
    const asked = ask(a!, Write)
    const third = send(a!, TurnKind.Tell, Write)
    assert.deepStrictEqual(host.calls, ["drainer a"])
    assert.strictEqual(a!.mailboxDepth, 3)
    assert.strictEqual(a!.endOneWay(first), second, "the next tell, begun")
    assert.strictEqual(second.state, TurnState.Running)
    // An ask at the head: the drainer stops and the ask is granted as after any turn.
    assert.isUndefined(a!.endOneWay(second))
    assert.isFalse(a!.draining)
    assert.strictEqual(asked.outcome, granted)
    a!.end(asked)
    // The tell behind the ask starts a new drainer.
    assert.deepStrictEqual(host.calls, ["drainer a", "drainer a"])
    assert.strictEqual(third.state, TurnState.Running)
  })

  it("runs a one-way turn beside a read-only turn on a fiber of its own", () => {
    const { acts: [b], host } = setup("b")
    ask(b!, Read)
    send(b!, TurnKind.Tell, Read)
    assert.deepStrictEqual(host.calls, ["beside b:Read"])
  })

  it("deactivates only once the running turns end; what queued meanwhile is not granted", () => {
    const { acts: [a], host } = setup("a")
    const running = ask(a!, Write)
    const queued = ask(a!, Write)
    a!.deactivate()
    assert.strictEqual(a!.phase, ActivationState.Deactivating)
    assert.deepStrictEqual(host.calls, [])
    a!.end(running)
    assert.deepStrictEqual(host.calls, ["finish a"])
    assert.strictEqual(queued.state, TurnState.Queued)
  })

  it("deactivateWhenIdle inside a turn defers to the end of the running turns", () => {
    const { acts: [a], host } = setup("a")
    const running = ask(a!, Write)
    a!.deactivateWhenIdle()
    assert.strictEqual(a!.phase, ActivationState.Active)
    a!.end(running)
    assert.strictEqual(a!.phase, ActivationState.Deactivating)
    assert.deepStrictEqual(host.calls, ["finish a"])
  })

  it("serves the message that activated it, then deactivates if asked to meanwhile", () => {
    const host = new RecordingHost()
    const slot = new TypeSlot("T", host as unknown as LocalRouter)
    slot.options = resolveOptions({}, defaultActorDefaults)
    const a = new Activation(slot, "a", "a")
    const first = Turn.message(TurnKind.Ask, a, undefined, Write, undefined)
    a.enqueue(first)
    const second = Turn.message(TurnKind.Ask, a, undefined, Write, undefined)
    a.enqueue(second)
    a.deactivate()
    a.activated({}, 0)
    assert.strictEqual(first.outcome, granted)
    a.end(first)
    assert.strictEqual(a.phase, ActivationState.Deactivating)
    assert.strictEqual(second.state, TurnState.Queued, "left for the next activation")
    assert.deepStrictEqual(host.calls, ["finish a"])
  })

  it("a failure suspends at once, tells the host at once, and is supervised once the running turns end", () => {
    const { acts: [a], host } = setup("a")
    const r1 = ask(a!, Read)
    const r2 = ask(a!, Read)
    const queued = ask(a!, Write)
    a!.fail(Failure.defect(new Error("boom")))
    a!.fail(Failure.defect(new Error("again")))
    assert.strictEqual(a!.phase, ActivationState.Suspended)
    assert.deepStrictEqual(host.calls, ["failed a"], "the first failure only")
    a!.end(r1)
    assert.deepStrictEqual(host.calls, ["failed a"])
    a!.end(r2)
    assert.deepStrictEqual(host.calls, ["failed a", "supervise a"])
    assert.strictEqual(queued.state, TurnState.Queued)
    a!.resume()
    assert.strictEqual(queued.outcome, granted, "resume goes on with the queue")
  })

  it("a held sibling queues calls until released, then serves them", () => {
    const { acts: [a, b] } = setup("a", "b")
    b!.hold(a!)
    const queued = ask(b!, Write)
    assert.strictEqual(queued.state, TurnState.Queued)
    b!.release()
    assert.strictEqual(queued.outcome, granted)
  })

  it("withdraws a cancelled queued ask, and ends a cancelled granted one", () => {
    const { acts: [a] } = setup("a")
    const running = ask(a!, Write)
    const withdrawn = ask(a!, Write)
    const next = ask(a!, Write)
    a!.cancel(withdrawn)
    assert.strictEqual(a!.mailboxDepth, 1)
    a!.end(running)
    assert.strictEqual(next.outcome, granted)
    a!.cancel(next)
    assert.strictEqual(next.state, TurnState.Ended)
    assert.strictEqual(a!.running, 0)
  })

  describe("deadlock detection", () => {
    it("A→B→A: a call back into a waiting chain is a cycle", () => {
      const { acts: [a, b] } = setup("a", "b")
      const inA = ask(a!, Write)
      const inB = ask(b!, Write, inA)
      assert.deepStrictEqual(cycleFrom(a!, inB)?.map((x) => x.id), ["a", "b", "a"])
    })

    it("finds the cycle when an activation has two turns parked at once and one of them was answered", () => {
      // B runs a turn; A runs two read-only turns: one parks in B's mailbox, one in C's.
      const { acts: [a, b, c] } = setup("a", "b", "c")
      const inB = ask(b!, Write)
      const inC = ask(c!, Write)
      const read1 = ask(a!, Read)
      const read2 = ask(a!, Read)
      const parkedInB = ask(b!, Write, read1)
      const parkedInC = ask(c!, Write, read2)
      assert.deepStrictEqual([parkedInB.state, parkedInC.state], [TurnState.Queued, TurnState.Queued])
      // C answers: read2's wait ends, read1 still waits in B.
      c!.end(inC)
      assert.strictEqual(parkedInC.outcome, granted)
      // B's turn now asks A for a write: A's read1 waits on B, so this waits on itself.
      assert.isFalse(a!.admits(Write, inB))
      assert.deepStrictEqual(cycleFrom(a!, inB)?.map((x) => x.id), ["b", "a", "b"])
    })

    it("forgets a wait once the parked ask leaves the mailbox, however it leaves", () => {
      const { acts: [a, b] } = setup("a", "b")
      const inB = ask(b!, Write)
      const inA = ask(a!, Read)
      const parked = ask(b!, Write, inA)
      assert.isDefined(cycleFrom(a!, inB))
      b!.cancel(parked)
      assert.isUndefined(cycleFrom(a!, inB), "withdrawn")
      ask(b!, Write, inA)
      b!.takeQueued()
      assert.isUndefined(cycleFrom(a!, inB), "taken out of the mailbox (refused or handed on)")
    })
  })
})
