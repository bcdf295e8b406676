/**
 * The FIFO of turns waiting for an activation: a doubly linked list threaded through the
 * turns themselves (`prev`/`next`), so queueing allocates nothing and taking the head is
 * constant time however long the mailbox is. A withdrawn turn (its asker was interrupted
 * or timed out) is unlinked at once: it is never run, never held in memory, and the size
 * is exactly the number of messages still waiting, which is what capacity bounds.
 * Capacity is enforced by the activation, which knows the policy.
 *
 * @internal
 */
import { type Turn, TurnState } from "./Turn.ts"

/** @internal */
export class Mailbox {
  private head: Turn | undefined = undefined
  private tail: Turn | undefined = undefined
  private count = 0

  /** Turns waiting. */
  get size(): number {
    return this.count
  }

  push(turn: Turn): void {
    const tail = this.tail
    turn.prev = tail
    turn.next = undefined
    if (tail === undefined) this.head = turn
    else tail.next = turn
    this.tail = turn
    this.count++
  }

  /** Removes a waiting turn and marks it withdrawn; a turn not in this mailbox is left alone. */
  withdraw(turn: Turn): void {
    if (turn.prev === undefined && this.head !== turn) return
    this.unlink(turn)
    turn.state = TurnState.Cancelled
  }

  /** The oldest turn waiting. */
  peek(): Turn | undefined {
    return this.head
  }

  shift(): Turn | undefined {
    const turn = this.head
    if (turn !== undefined) this.unlink(turn)
    return turn
  }

  /** Removes and returns every turn waiting, oldest first. */
  takeAll(): Array<Turn> {
    const all: Array<Turn> = []
    let turn = this.head
    while (turn !== undefined) {
      const next: Turn | undefined = turn.next
      turn.prev = turn.next = undefined
      all.push(turn)
      turn = next
    }
    this.head = this.tail = undefined
    this.count = 0
    return all
  }

  private unlink(turn: Turn): void {
    const prev = turn.prev
    const next = turn.next
    if (prev === undefined) this.head = next
    else prev.next = next
    if (next === undefined) this.tail = prev
    else next.prev = prev
    turn.prev = turn.next = undefined
    this.count--
  }
}
