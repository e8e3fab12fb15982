//! Counterexamples as readable traces, their replay and their shrinking.

use std::fmt::Write as _;

use stateright::{Model, Property};

use crate::calls::Io;
use crate::check::{Action, Fate, TaskModel};
use crate::invocation::Prog;
use crate::world::{World, claim_id, task_id};

/// Who process `p` is.
fn who(w: &World, p: u8) -> String {
    let Some(proc) = w.procs.get(p as usize) else {
        return format!("process {p}");
    };
    let kind = match &proc.prog {
        Prog::Post(post) => format!("POST#{}{}", post.no, if post.keyed { " (key)" } else { "" }),
        Prog::Delivery(d) => format!("delivery {} of {}", claim_id(d.no), task_id(d.task)),
        Prog::Cancel { task } => format!("DELETE {}", task_id(*task)),
        Prog::Consumer { record } => format!("failure record {record}"),
        Prog::Gone => "ended process".to_owned(),
    };
    format!("[{p}] {kind} (clock +{})", proc.off)
}

/// What `action` does, said before it is taken in `w`.
pub fn describe(w: &World, model: &TaskModel, action: &Action) -> String {
    match action {
        Action::Tick => "time passes".to_owned(),
        Action::Step(p) => {
            let doing = match &w.procs[*p as usize].prog {
                Prog::Post(post) => format!("{:?}", post.pc),
                Prog::Delivery(d) => format!("{:?}", d.pc),
                _ => String::new(),
            };
            let answer = match &w.procs[*p as usize].io {
                Io::Answered(resp) => format!(" reads {resp:?}"),
                _ => String::new(),
            };
            format!("{} at {doing}{answer}: steps", who(w, *p))
        }
        Action::Land(p, fate) => {
            let Io::InFlight { req, .. } = &w.procs[*p as usize].io else {
                return "?".to_owned();
            };
            let how = match fate {
                Fate::Ok => "lands",
                Fate::Lost => "LANDS, its answer LOST",
                Fate::Dropped => "FAILS: never lands",
                Fate::LostRetry => "LANDS, its answer LOST; the SDK tries again",
                Fate::DroppedRetry => "FAILS without landing; the SDK tries again",
                Fate::Stale => "TIMES OUT, still on its way (may land later); the SDK tries again",
            };
            format!("{}: {req:?} {how}", who(w, *p))
        }
        Action::Orphan(i, lands) => format!(
            "the dropped {:?} {}",
            w.orphans[*i as usize].req,
            if *lands { "LANDS now" } else { "is lost" }
        ),
        Action::Crash(p) => format!("{} CRASHES", who(w, *p)),
        Action::Kill(p) => format!("{}: Lambda ends it at its deadline", who(w, *p)),
        Action::WorkEnds(p, i) => {
            format!(
                "{}: the work returns {:?}",
                who(w, *p),
                model.cfg.outcomes[*i as usize]
            )
        }
        Action::Post(off) => format!("the caller sends POST /async (clock +{off})"),
        Action::Deliver(e, off) => {
            let event = &w.events[*e as usize];
            format!(
                "Lambda delivers event {e} of {} (invocation {}, clock +{off})",
                task_id(event.task),
                event.invocations + 1
            )
        }
        Action::Dup(e) => format!("Lambda's queue duplicates event {e}"),
        Action::AgeOut(e) => format!("event {e} is past its maximum age: failure record"),
        Action::Consume(r, off) => format!("the failure queue delivers record {r} (clock +{off})"),
        Action::Cancel(n, off) => format!("DELETE /tasks/{} (clock +{off})", task_id(*n)),
    }
}

/// The tasks table and the key, in one line.
pub fn table(w: &World, model: &TaskModel) -> String {
    let mut out = String::new();
    for (n, task) in w.tasks.iter().enumerate() {
        let Some(task) = task else { continue };
        let v = &task.view;
        let shown = w.shown(&model.cfg, n).unwrap();
        let _ = write!(
            out,
            "{}: {}{} {} claim={} lease={} attempts={}{} answer_by={}{}{} | ",
            task_id(n as u8),
            v.status.as_str(),
            if shown != v.status {
                format!(" (shown {})", shown.as_str())
            } else {
                String::new()
            },
            if v.enqueued { "enqueued" } else { "unmarked" },
            v.claim_id.as_deref().unwrap_or("-"),
            v.lease_until.map_or("-".to_owned(), |l| l.to_string()),
            v.attempts,
            if v.started_claims.is_empty() {
                String::new()
            } else {
                format!(" started={}", v.started_claims.join(","))
            },
            v.answer_by,
            if task.result { " result" } else { "" },
            if task.error { " error" } else { "" },
        );
    }
    if let Some(key) = &w.key {
        let _ = write!(
            out,
            "key: {:?} {} {} hold_until={}",
            key.state, key.reservation, key.task_id, key.hold_until
        );
    }
    out
}

/// A path as a readable trace: each action, then the record after it.
pub fn render(model: &TaskModel, init: &World, actions: &[Action]) -> String {
    let mut out = String::new();
    let mut w = init.clone();
    let _ = writeln!(out, "  t={:<6} {}", w.t, table(&w, model));
    for (i, action) in actions.iter().enumerate() {
        let said = describe(&w, model, action);
        match model.next_state(&w, action.clone()) {
            Some(next) => w = next,
            None => {
                let _ = writeln!(out, "{:>3}. {said}: NOT POSSIBLE", i + 1);
                break;
            }
        }
        let _ = writeln!(
            out,
            "{:>3}. {said}\n       t={:<6} {}",
            i + 1,
            w.t,
            table(&w, model)
        );
    }
    out
}

/// Replays `actions` from the initial state, each one enabled when taken;
/// the states visited, or `None` if one was not enabled.
pub fn replay(model: &TaskModel, actions: &[Action]) -> Option<Vec<World>> {
    let timed: Vec<Step> = actions.iter().map(|a| (a.clone(), 0)).collect();
    replay_timed(model, &timed, false).map(|(states, _)| states)
}

/// An action and, for a `Tick`, the instant it reached.
pub type Step = (Action, u64);

/// Replays `steps`; with `to_time`, a `Tick` moves time on (as many times
/// as it takes) to the instant it reached when the path was found, so that
/// a path stays in time when actions before it are dropped. The states
/// visited and the actions taken.
pub fn replay_timed(
    model: &TaskModel,
    steps: &[Step],
    to_time: bool,
) -> Option<(Vec<World>, Vec<Action>)> {
    let mut w = model.init_states().remove(0);
    let mut states = vec![w.clone()];
    let mut taken = Vec::new();
    let mut enabled = Vec::new();
    for (action, target) in steps {
        loop {
            if to_time && *action == Action::Tick && w.t >= *target {
                break;
            }
            enabled.clear();
            model.actions(&w, &mut enabled);
            if !enabled.contains(action) {
                return None;
            }
            w = model.next_state(&w, action.clone())?;
            states.push(w.clone());
            taken.push(action.clone());
            if !to_time || *action != Action::Tick {
                break;
            }
        }
    }
    Some((states, taken))
}

/// Whether the states of a path are a counterexample to `property`: an
/// `always` that fails in some state, an `eventually` that fails in a final
/// state with nothing left to do.
fn counterexample(model: &TaskModel, property: &Property<TaskModel>, states: &[World]) -> bool {
    match property.expectation {
        stateright::Expectation::Always => states.iter().any(|s| !(property.condition)(model, s)),
        stateright::Expectation::Eventually => {
            let last = states.last().unwrap();
            let mut next = Vec::new();
            model.actions(last, &mut next);
            next.is_empty() && states.iter().all(|s| !(property.condition)(model, s))
        }
        stateright::Expectation::Sometimes => false,
    }
}

/// The process an action is about, if any.
fn process_of(action: &Action) -> Option<u8> {
    match action {
        Action::Step(p) | Action::Land(p, _) | Action::Crash(p) | Action::Kill(p) => Some(*p),
        Action::WorkEnds(p, _) => Some(*p),
        _ => None,
    }
}

fn spawns(action: &Action) -> bool {
    matches!(
        action,
        Action::Post(_) | Action::Deliver(..) | Action::Consume(..) | Action::Cancel(..)
    )
}

/// `steps` without process `k` (its spawn and every action of it), the
/// processes after it renumbered.
fn without_process(steps: &[Step], k: u8) -> Option<Vec<Step>> {
    let mut spawned = 0u8;
    let mut found = false;
    let mut out = Vec::new();
    for (action, at) in steps {
        if spawns(action) {
            spawned += 1;
            if spawned - 1 == k {
                found = true;
                continue;
            }
        }
        match process_of(action) {
            Some(p) if p == k => continue,
            Some(p) if p > k => out.push((renumber(action, p - 1), *at)),
            _ => out.push((action.clone(), *at)),
        }
    }
    found.then_some(out)
}

fn renumber(action: &Action, p: u8) -> Action {
    match action {
        Action::Step(_) => Action::Step(p),
        Action::Land(_, fate) => Action::Land(p, *fate),
        Action::Crash(_) => Action::Crash(p),
        Action::Kill(_) => Action::Kill(p),
        Action::WorkEnds(_, i) => Action::WorkEnds(p, *i),
        other => other.clone(),
    }
}

/// Shrinks a counterexample: drops whole processes, then single actions,
/// while it stays one (time kept to the instants of the path found), and
/// cuts it after the first failing state.
pub fn shrink(
    model: &TaskModel,
    property: &Property<TaskModel>,
    actions: &[Action],
) -> Vec<Action> {
    let Some(states) = replay(model, actions) else {
        return actions.to_vec();
    };
    // Each action with the instant after it.
    let mut path: Vec<Step> = actions
        .iter()
        .cloned()
        .zip(states.iter().skip(1).map(|s| s.t))
        .collect();
    let check = |path: &[Step]| -> Option<Vec<Step>> {
        let (states, taken) = replay_timed(model, path, true)?;
        if !counterexample(model, property, &states) {
            return None;
        }
        // As taken (a Tick per instant), cut after the first failure.
        let mut taken: Vec<Step> = taken
            .into_iter()
            .zip(states.iter().skip(1).map(|s| s.t))
            .collect();
        if property.expectation == stateright::Expectation::Always
            && let Some(first) = states.iter().position(|s| !(property.condition)(model, s))
        {
            taken.truncate(first);
        }
        Some(taken)
    };
    if let Some(cut) = check(&path) {
        path = cut;
    }
    let mut shrunk = true;
    while shrunk {
        shrunk = false;
        for k in (0..path.iter().filter(|(a, _)| spawns(a)).count() as u8).rev() {
            if let Some(shorter) = without_process(&path, k).and_then(|p| check(&p)) {
                path = shorter;
                shrunk = true;
            }
        }
        let mut i = path.len();
        while i > 0 {
            i -= 1;
            if i >= path.len() {
                continue;
            }
            let mut shorter = path.clone();
            shorter.remove(i);
            if let Some(shorter) = check(&shorter)
                && shorter.len() < path.len()
            {
                path = shorter;
                shrunk = true;
            }
        }
    }
    path.into_iter().map(|(action, _)| action).collect()
}
