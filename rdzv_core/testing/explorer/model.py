"""An abstract, finite model of the scalable protocol for the explorer.

State: the store's keys (round hint, ``closed``, per round: ticket counter,
written slots, seal, returning counter, dead markers and counter, alive keys
with their expiry) and each node (idle / live / dead / exited; its
membership, its heartbeat, its join in progress). Every store operation of a
node is one atomic step. Decisions come from a :class:`~.rules.Rules`.

Time is discrete (interval = tick = 1, TTL = ``Config.ttl`` ticks) and kept
*relative to now* (now is always 0), so two states that differ only in when
they happen are one state. Store operations take no time next to a tick:
while one is under way (a join's next operation, learning a seal, an agent's
restart, a shutdown, a death counter add) nothing else but events happens.
Between such chains a heartbeat ticks (in a fixed phase order, chosen when
each heartbeat starts, its first beat within the next tick, and reshuffled
by a store freeze, whose blocked ticks all complete at once when it ends),
or a waiter polls (it notices ``closed``; it tries to seal when
:func:`~rdzv_core.protocol.decisions.sealable` holds, the last call being
over at any time from ``Config.last_call`` ticks after the
``min_nodes``-th ticket, which covers designated sealers, takeovers and
every last-call timing), or, when every heartbeat has ticked, time moves
one tick on.

A beat value is a token: a read of a present alive key returns
:data:`BEAT`. A new beat (or an expiry, a wipe) makes every watch that had
seen the old value forget it: no later read can return it again, so the
watch decides the same as if it had never seen it.

Events come from a budget (:class:`Config`): kill a node, a graceful
``leave()``, a member's workers fail (it re-joins while the others keep
running), a late joiner starts, a lost reply on an ``add`` (applied, the
node restarts its join, a phantom ticket stays), the store stalls for S
ticks (frozen: everything blocks; down: reads fail), the store loses every
key, and the job ends (every member's agent finishes and calls
``shutdown()``).
"""

from __future__ import annotations

from typing import Optional

from rdzv_core.protocol import decisions
from rdzv_core.testing.explorer.events import Events
from rdzv_core.testing.explorer.properties import Properties
from rdzv_core.testing.explorer.rules import Rules
from rdzv_core.testing.explorer.state import (
    _EVENT_INDEX, BEAT, EVENTS, EXITED, IDLE, LIVE, LOCAL, Config, Heart, Join, Member, Node, Round, State, Step,
    contested, is_running, mark_bytes, replace_at, slot_mark,
)

__all__ = ["Config", "Model", "State", "Step"]


class Model(Events, Properties):
    """Initial state and transitions of one :class:`Config` under one :class:`Rules`."""

    def __init__(self, config: Config, rules: Rules) -> None:
        self.c = config
        self.rules = rules
        self.stall = int(rules.stall_limit(config.ttl, 1, 1))
        self.empty = Round(0, 0, None, 0, 0, 0, (0,) * config.max_nodes)
        self._keys: dict[Node, str] = {}

    def initial(self) -> State:
        """Every node not late starts its first join at time 0; the store is empty."""
        c = self.c
        nodes = tuple(
            Node(LIVE, None, None, Join("open", None), None, 0) if i < c.nodes - c.late
            else Node(IDLE, None, None, None, None, 0)
            for i in range(c.nodes)
        )
        budget = tuple(getattr(c, k) for k in EVENTS)
        return State(0, False, (self.empty,) * (c.max_round + 2), nodes, (), budget, False, 0, 0)

    def canonical(self, s: State) -> tuple[State, Optional[tuple[int, ...]]]:
        """Nodes are interchangeable (nothing in a state refers to a node's
        index but the phase order): the representative sorts them. Returns it
        and where each node went (``None``: nowhere).

        Keys no node can touch again are dropped first: alive keys of a round
        that no heartbeat watches and no node joins, and every key of a round
        below all that live nodes can still read (their rounds less one, the
        hint less one)."""
        s = self._collect(s)
        keys = []
        for n in s.nodes:
            key = self._keys.get(n)
            if key is None:
                key = self._keys[n] = repr(n)
            keys.append(key)
        order = sorted(range(len(keys)), key=keys.__getitem__)
        if all(k == p for k, p in enumerate(order)):
            return s, None
        moved = [0] * len(order)
        for new, old in enumerate(order):
            moved[old] = new
        nodes = tuple(s.nodes[p] for p in order)
        return s._replace(nodes=nodes, phases=tuple(moved[p] for p in s.phases)), tuple(moved)

    def _collect(self, s: State) -> State:
        live = [n for n in s.nodes if n.status == LIVE]
        used = {n.hb.round for n in live if n.hb is not None} | {n.join.round for n in live if n.join is not None}
        low = min([s.hint] + [n.member.round for n in live if n.member is not None]
                  + [n.join.round for n in live if n.join is not None and n.join.step != "open"])
        rounds = s.rounds
        if any(w[0] < low - 1 for w in s.slot_writes):
            s = s._replace(slot_writes=frozenset(w for w in s.slot_writes if w[0] >= low - 1))
        for r, rk in enumerate(rounds):
            if r < low - 1:
                if rk != self.empty:
                    rounds = replace_at(rounds, r, self.empty)
            elif r not in used and any(rk.alive):
                rounds = replace_at(rounds, r, rk._replace(alive=self.empty.alive))
        return s if rounds is s.rounds else s._replace(rounds=rounds)

    # -- helpers ------------------------------------------------------------------

    def _forget(self, nodes: tuple[Node, ...], round_no: int, rank: Optional[int]) -> tuple[Node, ...]:
        """Watches on alive key (round_no, rank) (every key if rank is None) forget the value seen."""
        out = list(nodes)
        for i, n in enumerate(nodes):
            hb = n.hb
            if hb is not None and hb.watch.value is not None and (
                    rank is None or (hb.round == round_no and hb.watched == rank)):
                out[i] = n._replace(hb=hb._replace(watch=self.rules.forget(hb.watch)))
        return tuple(out)

    def _shift(self, s: State, dt: int) -> State:
        """Time moves ``dt`` ticks on: alive keys age and expire, watches' times shift."""
        ttl, nodes, rounds = self.c.ttl, s.nodes, list(s.rounds)
        for r, rk in enumerate(rounds):
            if rk.quorum is not None and rk.quorum > -self.c.last_call:
                rk = rounds[r] = rk._replace(quorum=max(rk.quorum - dt, -self.c.last_call))
            if not any(rk.alive):
                continue
            alive = tuple(max(e - dt, 0) for e in rk.alive)
            for rank, (before, after) in enumerate(zip(rk.alive, alive)):
                if before and not after:
                    nodes = self._forget(nodes, r, rank)
            rounds[r] = rk._replace(alive=alive)
        nodes = tuple(
            n._replace(hb=n.hb._replace(watch=self.rules.shift(n.hb.watch, dt, ttl, self.stall)))
            if n.hb is not None else n for n in nodes
        )
        return s._replace(rounds=tuple(rounds), nodes=nodes)

    def _stop(self, s: State, i: int, node: Node) -> State:
        """Node ``i`` becomes ``node`` with its heartbeat stopped."""
        phases = tuple(p for p in s.phases if p != i)
        return s._replace(nodes=replace_at(s.nodes, i, node._replace(hb=None)), phases=phases)

    def _spend(self, s: State, kind: str) -> State:
        k = EVENTS.index(kind)
        return s._replace(budget=replace_at(s.budget, k, s.budget[k] - 1))

    def _has(self, s: State, kind: str) -> bool:
        return s.budget[_EVENT_INDEX[kind]] > 0

    # -- transitions ----------------------------------------------------------------

    def successors(self, s: State) -> list[Step]:
        """Every transition out of ``s``: urgent steps, lazy steps, the tick
        (only when nothing is urgent) and events."""
        groups = [g for i, n in enumerate(s.nodes) if n.status == LIVE for g in self._urgent(s, i, n)]
        # Partial-order reduction: a store operation independent of every other
        # node's operations (see LOCAL) commutes with them, so only the first
        # such one is taken here (all its variants); events stay enabled.
        local = next((steps for independent, steps in groups if independent), None)
        steps = list(local) if local is not None else [step for _, steps in groups for step in steps]
        if not steps:  # no store operation under way: a heartbeat ticks, a waiter polls, or time moves on
            due = [i for i in s.phases if s.nodes[i].hb.due]
            if due:  # heartbeats tick in phase order
                steps.append(self._hb_tick(s, due[0]))
            for i, n in enumerate(s.nodes):
                if n.status == LIVE and n.join is not None and n.join.step == "wait":
                    steps.extend(self._poll(s, i, n))
            if not due:
                t = self._shift(s, 1)
                nodes = tuple(n._replace(hb=n.hb._replace(due=True)) if n.hb is not None else n for n in t.nodes)
                steps.append(Step("tick", t._replace(nodes=nodes)))
        steps.extend(self._events(s))
        return steps

    def _urgent(self, s: State, i: int, n: Node) -> list[tuple[bool, list[Step]]]:
        """Node ``i``'s store operations that are due now, as groups of
        variants, each marked whether it is independent of every other
        node's operations (:data:`LOCAL`)."""
        rules, name = self.rules, f"n{i}"
        if n.ending == 1:
            if rules.shutdown_closes:  # writing closed races with joins reading it
                return [(False, [Step(f"{name} shutdown: closes the run, stops beating",
                                      self._stop(s._replace(closed=True), i, n._replace(status=EXITED, ending=0)))])]
            return [(True, [self._own_death(s, i, n, f"{name} shutdown (old: a graceful leave)")])]
        if n.ending == 2:
            m = n.member
            rk = s.rounds[m.round]
            rk = rk._replace(dead=rk.dead + 1, alive=replace_at(rk.alive, m.rank, 0))
            t = s._replace(rounds=replace_at(s.rounds, m.round, rk), nodes=self._forget(s.nodes, m.round, m.rank))
            return [(True, [Step(f"{name} adds 1 to dead({m.round}), deletes its alive key, exits",
                                 t._replace(nodes=replace_at(t.nodes, i, n._replace(status=EXITED, ending=0))))])]
        out: list[tuple[bool, list[Step]]] = []
        hb = n.hb
        if hb is not None and hb.recording:
            rk = s.rounds[hb.round]
            rk = rk._replace(dead=rk.dead + 1)
            hb2 = hb._replace(watched=(hb.watched + 1) % hb.world, watch=rules.watch_begin(0), recording=False)
            out.append((True, [Step(f"{name} hb: adds 1 to dead({hb.round})", s._replace(
                rounds=replace_at(s.rounds, hb.round, rk), nodes=replace_at(s.nodes, i, n._replace(hb=hb2))))]))
        j = n.join
        if j is None:
            if is_running(n) and hb.restart:
                out.append((True, [Step(f"{name} agent: num_nodes_waiting() > 0, restarts and re-rendezvouses",
                                        s._replace(nodes=replace_at(s.nodes, i, n._replace(
                                            join=Join("open", n.member), hb=hb._replace(restart=False)))))]))
            return out
        steps = self._join_step(s, i, n, j)
        if steps:
            out.append((j.step in LOCAL and not contested(s, i, j), steps))
        return out

    def _own_death(self, s: State, i: int, n: Node, label: str) -> Step:
        """leave(): stop beating, create our own dead marker (then count it)."""
        m = n.member
        rk = s.rounds[m.round]
        if rk.marks >> m.rank & 1:
            return Step(f"{label}: already marked dead, exits", self._stop(s, i, n._replace(status=EXITED, ending=0)))
        t = s._replace(rounds=replace_at(s.rounds, m.round, rk._replace(marks=rk.marks | 1 << m.rank)))
        return Step(f"{label}: stops beating, marks itself dead in round {m.round}",
                    self._stop(t, i, n._replace(ending=2)))

    def _join_step(self, s: State, i: int, n: Node, j: Join) -> list[Step]:
        c, rules, name, r = self.c, self.rules, f"n{i}", j.round

        def to(join: Optional[Join], label: str, t: State = s, **node: object) -> Step:
            return Step(label, t._replace(nodes=replace_at(t.nodes, i, n._replace(join=join, **node))))

        if j.step == "open":
            if s.closed:
                return [Step(f"{name} opens: run closed, exits",
                             self._stop(s, i, n._replace(status=EXITED, join=None)))]
            r = max(j.prev.round + 1 if j.prev else 0, s.hint)
            if r > c.max_round:
                return [Step(f"{name} opens round {r}: beyond the bound", None)]
            return [to(j._replace(step="ticket", round=r), f"{name} opens round {r}")]
        rk = s.rounds[r]
        if j.step == "ticket":
            quorum = 0 if rk.tickets + 1 == c.min_nodes else rk.quorum
            t = s._replace(rounds=replace_at(s.rounds, r, rk._replace(tickets=rk.tickets + 1, quorum=quorum)))
            out = [to(j._replace(step="slot", ticket=rk.tickets + 1),
                      f"{name} takes ticket {rk.tickets + 1} of round {r}", t)]
            if self._has(s, "lost"):
                out.append(to(Join("open", j.prev), f"{name} takes ticket {rk.tickets + 1} of round {r}, "
                              "the reply is lost: restarts its join", self._spend(t, "lost"))._replace(event=True))
            return out
        returning = j.prev is not None and j.prev.round == r - 1
        if j.step == "slot":
            k = sum(1 for w in s.slot_writes if w[:2] == (r, j.ticket))
            rewrites = frozenset(w for w in rk.rewrites if w[0] != j.ticket) | ({(j.ticket, k)} if k else set())
            t = s._replace(rounds=replace_at(s.rounds, r, rk._replace(slots=rk.slots | 1 << j.ticket,
                                                                       rewrites=rewrites)),
                           slot_writes=s.slot_writes | {(r, j.ticket, k)})
            return [to(j._replace(step="returning" if returning else "before", mark=k),
                       f"{name} writes slot {j.ticket}{f' (write {k + 1} of that key)' if k else ''}", t)]
        if j.step == "returning":
            t = s._replace(rounds=replace_at(s.rounds, r, rk._replace(returning=rk.returning + 1)))
            out = [to(j._replace(step="before"), f"{name} adds 1 to returning({r})", t)]
            if self._has(s, "lost"):
                out.append(to(Join("open", j.prev), f"{name} adds 1 to returning({r}), the reply is lost: "
                              "restarts its join", self._spend(t, "lost"))._replace(event=True))
            return out
        if j.step == "before":
            if r == 0:
                world = None
            elif n.seen is not None and n.seen[0] == r - 1:
                world = n.seen[1]
            else:
                seal = s.rounds[r - 1].seal
                world = None if seal is None else len(seal)
            spare = rules.is_spare(j.ticket, returning, world, c.max_nodes)
            return [to(j._replace(step="wait", prev_world=world, spare=spare),
                       f"{name} waits in round {r} (previous world {world}{', spare' if spare else ''})")]
        if j.step == "wait":
            return [] if rk.seal is None else self._learn(s, i, n, j, rk.seal, rk.seal_marks)
        if j.step == "seal_read":
            count = min(j.taken, c.max_nodes)
            if any(m.status == LIVE and m.join is not None and m.join.step == "slot" and m.join.round == r
                   and m.join.ticket <= count for m in s.nodes):
                return []  # the sealer waits (up to 2 s) for slots of tickets taken but not yet written
            written = [bool(rk.slots >> t & 1) for t in range(1, count + 1)]
            admitted = rules.admitted(written, c.min_nodes, c.max_nodes)
            if admitted is None:
                return [to(j._replace(step="wait"), f"{name} reads slots of round {r}: too few, waits")]
            marks = b"".join(mark_bytes(slot_mark(rk, t)) for t in admitted)
            return [to(j._replace(step="seal_cas", admitted=admitted, marks=marks),
                       f"{name} reads slots of round {r}: admits tickets {list(admitted)}")]
        if j.step == "seal_cas":
            if rk.seal is not None:
                return [to(j._replace(step="hint"), f"{name} CAS seal of round {r}: lost to {list(rk.seal)}")]
            t = s._replace(rounds=replace_at(s.rounds, r, rk._replace(seal=j.admitted, seal_marks=j.marks)),
                           sealed=s.sealed | 1 << r,
                           late_sealed=s.late_sealed | (1 << r if s.ended else 0))
            step = to(j._replace(step="hint"), f"{name} seals round {r}: tickets {list(j.admitted)}", t)
            if s.sealed >> r & 1:
                return [step._replace(violation="two seals for one round")]
            return [step]
        assert j.step == "hint"
        return [to(j._replace(step="wait"), f"{name} writes round hint {r + 1}", s._replace(hint=r + 1))]

    def _learn(self, s: State, i: int, n: Node, j: Join, seal: tuple[int, ...], marks: Optional[bytes]) -> list[Step]:
        """The waiter sees the seal: a member (new heartbeat, a phase of its
        own among the others) or on to the next round."""
        name, r = f"n{i}", j.round
        seen = (r, len(seal))
        rank = self.rules.rank_in_seal(seal, marks, j.ticket, mark_bytes(j.mark))
        if rank is None:
            if r + 1 > self.c.max_round:
                return [Step(f"{name} not admitted to round {r}: next round beyond the bound", None)]
            join = Join("ticket", j.prev, r + 1)
            return [Step(f"{name} sees seal {list(seal)} of round {r}: not admitted, joins round {r + 1}",
                         s._replace(nodes=replace_at(s.nodes, i, n._replace(join=join, seen=seen))))]
        member = Member(r, rank, len(seal), j.ticket)
        hb = Heart(r, rank, len(seal), (rank + 1) % len(seal), self.rules.watch_begin(0), False, False, False, False)
        others = tuple(p for p in s.phases if p != i)
        label = f"{name} sees seal {list(seal)}: member of round {r}, rank {rank} of {len(seal)}"
        bad = "a node runs a round sealed after the job ended" if s.late_sealed >> r & 1 else None
        # Its first tick comes within a tick: later in this time unit (after the
        # heartbeats that ticked already), or in the next one before them.
        cursor = sum(1 for p in others if not s.nodes[p].hb.due)
        out = []
        for k in range(len(others) + 1):
            for due in (False, True):
                if (k > cursor and not due) or (k < cursor and due):
                    continue
                nodes = replace_at(s.nodes, i, n._replace(member=member, hb=hb._replace(due=due), join=None, seen=seen))
                where = f" (first beat {'this tick' if due else 'next tick'}, phase {k})" if others else ""
                out.append(Step(label + where, s._replace(nodes=nodes, phases=others[:k] + (i,) + others[k:]),
                                violation=bad))
        return out

    def _poll(self, s: State, i: int, n: Node) -> list[Step]:
        """A waiter's periodic wake-up (lazy): one read of closed and the counters."""
        c, j, name = self.c, n.join, f"n{i}"
        rk = s.rounds[j.round]
        if rk.seal is not None:
            return []  # it is woken by the seal (urgent)
        if s.closed:
            return [Step(f"{name} polls: run closed, exits{' (spare: gracefully)' if j.spare else ''}",
                         self._stop(s, i, n._replace(status=EXITED, join=None)))]
        if self.rules.announces_hint and s.hint > j.round:
            return [Step(f"{name} polls: hint {s.hint} is past round {j.round}, whose seal is gone: opens again",
                         s._replace(nodes=replace_at(s.nodes, i, n._replace(join=Join("open", j.prev)))))]
        if self.rules.checks_own_slot and not (rk.slots >> j.ticket & 1 and slot_mark(rk, j.ticket) == j.mark):
            return [Step(f"{name} polls: its slot {j.ticket} of round {j.round} is gone or another node's: "
                         "opens again", s._replace(nodes=replace_at(s.nodes, i, n._replace(join=Join("open", j.prev)))))]
        gone = s.rounds[j.round - 1].dead if j.round > 0 else 0
        over = rk.quorum is not None and -rk.quorum >= c.last_call
        if self.rules.sealable(rk.tickets, rk.returning, gone, j.prev_world, c.min_nodes, c.max_nodes, over):
            return [Step(f"{name} polls round {j.round} (taken {rk.tickets}, back {rk.returning}, gone {gone}): "
                         "sealable, tries to seal",
                         s._replace(nodes=replace_at(s.nodes, i, n._replace(
                             join=j._replace(step="seal_read", taken=rk.tickets)))))]
        return []

    def _hb_tick(self, s: State, i: int) -> Step:
        """One heartbeat tick: beat, then (from the second tick on) one read of
        closed, the waiting counters and the watched successor's beat."""
        c, rules, n = self.c, self.rules, s.nodes[i]
        hb, r = n.hb, n.hb.round
        rk = s.rounds[r]
        rk = rk._replace(alive=replace_at(rk.alive, hb.rank, c.ttl))
        nodes = self._forget(s.nodes, r, hb.rank)
        rounds = replace_at(s.rounds, r, rk)
        label = f"n{i} hb(r{r}): beats"
        violation = None
        if hb.ticked and rules.announces_hint and decisions.hint_to_announce(r, s.hint) is not None:
            s = s._replace(hint=r + 1)
            label += f", writes round hint {r + 1} back"
        if hb.ticked:
            nxt = s.rounds[r + 1]
            waiting = rules.nodes_waiting(hb.world, c.max_nodes, nxt.tickets, nxt.returning, rk.dead, s.closed)
            hb = hb._replace(restart=waiting > 0 and n.join is None)
            label += (f", sees closed={int(s.closed)} taken={nxt.tickets} back={nxt.returning} gone={rk.dead}"
                      f" (waiting {waiting})")
            watching = hb.world >= 2 and hb.watched != hb.rank and not hb.recording
            if watching and not (s.closed and rules.closed_stops_deaths):
                value = BEAT if rk.alive[hb.watched] else None
                watch, dead = hb.watch.read(value, 0, c.ttl, self.stall)
                hb = hb._replace(watch=watch)
                label += f", rank {hb.watched} {'beat' if value else 'missing'}"
                if dead:
                    if rk.marks >> hb.watched & 1:
                        label += ": dead (already marked)"
                        hb = hb._replace(watched=(hb.watched + 1) % hb.world, watch=rules.watch_begin(0))
                    else:
                        label += ": dead, marks it"
                        rk = rk._replace(marks=rk.marks | 1 << hb.watched)
                        rounds = replace_at(rounds, r, rk)
                        hb = hb._replace(recording=True)
                        if any(m.status == LIVE and m.hb is not None and m.hb.round == r and m.hb.rank == hb.watched
                               for m in s.nodes):
                            violation = "live member recorded dead"
        hb = hb._replace(ticked=True, due=False)
        nodes = replace_at(nodes, i, n._replace(hb=hb))
        return Step(label, s._replace(rounds=rounds, nodes=nodes), violation=violation)
