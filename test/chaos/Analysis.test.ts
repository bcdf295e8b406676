/**
 * The chaos test's checks on made-up records: each rule finds what breaks it and nothing
 * else, so that a chaos run that passes means the cluster kept the rule.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  allAnsweredAt,
  type CallRecord,
  checkActivationRecords,
  checkWrites,
  failures,
  findEarlyActivations,
  findOverlaps,
  overlapCandidates,
  servingSpans
} from "./Analysis.ts"
import { formatTurn, parseTurn, type TurnRecord } from "./ChaosAccount.ts"

const turn = (activation: string, silo: string, start: number, end: number, address = "ChaosAccount/a", tag = "Deposit"): TurnRecord => ({
  address,
  silo,
  pid: Number(activation.split(".")[0]),
  start,
  end,
  activation,
  tag,
  outcome: "ok"
})

describe("chaos analysis", () => {
  it("turn lines round-trip", () => {
    const t = turn("12.3", "127.0.0.1:4000@17", 1000.125, 1001.5)
    assert.deepStrictEqual(parseTurn(formatTurn(t)), t)
    assert.isUndefined(parseTurn("garbage"))
  })

  describe("findOverlaps", () => {
    it("a handover (the new activation's first turn after the old one's last) is no overlap", () => {
      assert.deepStrictEqual(findOverlaps([
        turn("1.1", "A", 0, 1),
        turn("1.1", "A", 5, 6),
        turn("2.1", "B", 6.5, 7),
        turn("2.1", "B", 9, 10),
        // another address, at the same times: independent
        turn("2.2", "B", 0, 20, "ChaosAccount/b")
      ]), [])
    })

    it("turns of two activations running at the same time", () => {
      const overlaps = findOverlaps([turn("1.1", "A", 0, 10), turn("2.1", "B", 5, 6)])
      assert.strictEqual(overlaps.length, 1)
      assert.strictEqual(overlaps[0]!.kind, "concurrent turns")
      assert.strictEqual(overlaps[0]!.first.activation, "1.1")
      assert.strictEqual(overlaps[0]!.second.activation, "2.1")
    })

    it("an activation that serves again after another one served (a stale read on SIGCONT)", () => {
      const overlaps = findOverlaps([
        turn("1.1", "A", 0, 1, undefined, "Balance"),
        turn("2.1", "B", 3, 4),
        turn("1.1", "A", 8, 9, undefined, "Balance")
      ])
      assert.strictEqual(overlaps.length, 1)
      assert.strictEqual(overlaps[0]!.kind, "stale activation served again")
      assert.deepStrictEqual([overlaps[0]!.witness.first.start, overlaps[0]!.witness.second.start], [8, 3])
      assert.deepStrictEqual([overlaps[0]!.first.start, overlaps[0]!.first.end, overlaps[0]!.first.turns], [0, 9, 2])
    })

    it("read-only turns of one activation running together are no overlap", () => {
      assert.deepStrictEqual(findOverlaps([turn("1.1", "A", 0, 10, undefined, "Balance"), turn("1.1", "A", 2, 3, undefined, "Balance")]), [])
    })

    it("a turn frozen across a SIGSTOP, while the new owner served after the silo was declared dead", () => {
      const turns = [
        turn("1.1", "A", 0, 1),
        turn("1.1", "A", 9, 50), // in flight at the SIGSTOP (10), ended after the SIGCONT (40)
        turn("2.1", "B", 20, 21),
        turn("2.1", "B", 30, 31)
      ]
      const pause = { pid: 1, stopped: 10, continued: 40, declaredDead: 15 }
      assert.deepStrictEqual(findOverlaps(turns, [pause]).map((o) => o.kind), ["turn frozen across a pause"])
      // Without the pause known, or a death not known, or the new owner serving (or activated) before the death: a violation.
      assert.deepStrictEqual(findOverlaps(turns).map((o) => o.kind), ["concurrent turns"])
      assert.deepStrictEqual(findOverlaps(turns, [{ ...pause, declaredDead: undefined }]).map((o) => o.kind), ["concurrent turns"])
      assert.deepStrictEqual(findOverlaps(turns, [{ ...pause, declaredDead: 25 }]).map((o) => o.kind), ["concurrent turns"])
      assert.deepStrictEqual(findOverlaps(turns, [pause], (a) => (a === "2.1" ? 12 : undefined)).map((o) => o.kind), ["concurrent turns"])
      // A turn of another process, or one started after the process was seen stopped (it ran, so it was not stopped): a violation.
      assert.deepStrictEqual(findOverlaps(turns, [{ ...pause, pid: 7 }]).map((o) => o.kind), ["concurrent turns"])
      assert.deepStrictEqual(findOverlaps(turns, [{ ...pause, stopped: 8 }]).map((o) => o.kind), ["concurrent turns"])
      // The paused activation also starting a turn after the SIGCONT: a stale activation served again.
      assert.deepStrictEqual(findOverlaps([...turns, turn("1.1", "A", 45, 46, undefined, "Balance")], [pause]).map((o) => o.kind), [
        "concurrent turns"
      ])
    })

    it("every overlapping pair is reported", () => {
      const turns = [turn("1.1", "A", 0, 10), turn("2.1", "B", 2, 3), turn("3.1", "C", 4, 12), turn("4.1", "D", 13, 14)]
      const overlaps = findOverlaps(turns)
      assert.deepStrictEqual(overlaps.map((o) => `${o.first.activation}/${o.second.activation}`), ["1.1/2.1", "1.1/3.1"])
      // Only the activations in some overlap are candidates (a long run's second pass reads only their turns).
      assert.deepStrictEqual([...overlapCandidates(servingSpans(turns).values())].sort(), ["1.1", "2.1", "3.1"])
      assert.deepStrictEqual(
        [...overlapCandidates(servingSpans([turn("1.1", "A", 0, 10), turn("2.1", "B", 11, 12), turn("3.1", "C", 5, 6, "ChaosAccount/b")]).values())],
        []
      )
    })
  })

  it("findEarlyActivations: a new activation before the previous one ended or its silo was declared dead", () => {
    const life = (activation: string, silo: string, start: number, end: number | undefined, address = "ChaosAccount/a") => ({
      activation,
      address,
      silo,
      start,
      end
    })
    const deaths = new Map([["K", 20]])
    const dead = (silo: string) => deaths.get(silo)
    // A handover, a passivation and reactivation, a killed silo's address taken after its death, another address.
    assert.deepStrictEqual(
      findEarlyActivations([
        life("1", "A", 0, 10),
        life("2", "B", 10, 30),
        life("3", "B", 31, undefined),
        life("4", "K", 0, undefined, "ChaosAccount/b"),
        life("5", "A", 20, undefined, "ChaosAccount/b"),
        life("6", "C", 5, 6, "ChaosAccount/c")
      ], dead),
      []
    )
    // A graceful handover that activated the new owner before the old one had finished; a killed silo's address taken before its death.
    const early = findEarlyActivations([
      life("1", "A", 0, 10),
      life("2", "B", 9, 30),
      life("4", "K", 0, undefined, "ChaosAccount/b"),
      life("5", "A", 19, undefined, "ChaosAccount/b")
    ], dead)
    assert.deepStrictEqual(early.map((e) => `${e.first.activation}<${e.second.activation}`), ["1<2", "4<5"])
    assert.strictEqual(early[1]!.firstDeclaredDead, 20)
  })

  it("checkActivationRecords: turns outside their recorded activation", () => {
    const turns = [turn("1.1", "A", 5, 6), turn("1.2", "A", 5, 6, "ChaosAccount/b"), turn("1.3", "A", 5, 6, "ChaosAccount/c")]
    const starts = new Map([
      ["1.1", { address: "ChaosAccount/a", silo: "A", start: 4 }],
      ["1.2", { address: "ChaosAccount/b", silo: "A", start: 5.5 }]
    ])
    const problems = checkActivationRecords(servingSpans(turns).values(), starts, new Map([["1.1", 5.5]]))
    assert.strictEqual(problems.length, 3)
    assert.match(problems.join("\n"), /1\.1: a turn ended at 6, after its deactivation/)
    assert.match(problems.join("\n"), /1\.2: a turn at 5 before its activation/)
    assert.match(problems.join("\n"), /1\.3: turns, but no activation record/)
  })

  it("checkWrites: lost, duplicated, foreign, wrong balance; unacknowledged may be there or not", () => {
    const issued = [
      { id: "w0-0", account: "a", amount: 2, acknowledged: true },
      { id: "w0-1", account: "a", amount: 3, acknowledged: true },
      { id: "w0-2", account: "a", amount: 4, acknowledged: false },
      { id: "w1-0", account: "b", amount: 5, acknowledged: false },
      { id: "w1-1", account: "c", amount: 1, acknowledged: true }
    ]
    assert.deepStrictEqual(
      checkWrites(issued, new Map([["a", { balance: 9, applied: ["w0-0", "w0-1", "w0-2"] }], ["c", { balance: 1, applied: ["w1-1"] }]])),
      []
    )
    const problems = checkWrites(
      issued,
      new Map([
        ["a", { balance: 7, applied: ["w0-0", "w0-2", "w0-2", "w1-0"] }],
        ["c", { balance: 5, applied: ["w1-1"] }]
      ])
    )
    assert.deepStrictEqual(problems.map((p) => `${p.account} ${p.problem} ${p.depositId}`).sort(), [
      "a balance ", // 2 + 2 × 4 = 10, not 7
      "a duplicated w0-2",
      "a foreign w1-0", // issued for b
      "a lost w0-1",
      "c balance "
    ])
    // An account never stored: its acknowledged deposits are lost.
    assert.deepStrictEqual(checkWrites(issued, new Map()).map((p) => `${p.account} ${p.problem}`).sort(), [
      "a lost",
      "a lost",
      "c lost"
    ])
  })

  it("allAnsweredAt: each account's first success after its last failure; undefined if one never answered", () => {
    const call = (account: string, start: number, end: number, outcome = "ok"): CallRecord => ({ account, kind: "read", start, end, outcome })
    const calls = [
      call("a", 1, 2),
      call("b", 0, 3, "ActorUnavailable"),
      call("b", 3, 4, "CallTimeout"),
      call("b", 2, 5), // started before b's last failure ended, ended after it
      call("c", 1, 6)
    ]
    assert.strictEqual(allAnsweredAt(calls, ["a", "b", "c"], 0, 100), 6)
    assert.strictEqual(allAnsweredAt(calls, ["a", "b"], 0, 100), 5)
    assert.isUndefined(allAnsweredAt(calls, ["a", "b"], 0, 4.5), "b has not answered before the end")
    assert.isUndefined(allAnsweredAt(calls, ["a", "d"], 0, 100), "d was never called")
    assert.isUndefined(allAnsweredAt(calls, ["a"], 1.5, 100), "a's only success started before the step")
    assert.deepStrictEqual(failures(calls, 0, 100), { byTag: { ActorUnavailable: 1, CallTimeout: 1 }, last: 4 })
  })
})
