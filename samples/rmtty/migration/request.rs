// SPDX-License-Identifier: GPL-2.0

//! How a request moves the machine, whichever front end it came through: planned, prepared,
//! then walked.
//!
//! The plan is the arcs from the device's state to the one requested, along the path the VFIO
//! core gives for the device's features ([`Features::next`], the steps `Transition::next` gives
//! too): the two front ends cannot take different ways, and an arc the protocol forbids is
//! refused through either before anything moves. What an arc needs that can fail to be had, the
//! session of the transfer it starts, its link and the front end's file, is prepared next,
//! without the device's lock, whose holders would otherwise wait for a load's copy of the device
//! memory to be allocated. Only then are the arcs taken, under the lock. The one arc that can
//! still fail, committing a loaded stream, can only be the first of a plan. So a request either
//! reaches the state asked for or changes nothing. (Over v2 the VFIO core installs a data file's
//! descriptor after the request returned; if it cannot, e.g. `EMFILE`, it fails the ioctl with the
//! device in its new state, as for any driver, and a reset brings the device back.)

use super::{
    runs,
    Direction,
    FrontEnd,
    Link,
    Machine,
    Transfer, //
};
use crate::{
    device::{
        DeviceState,
        RmttyVfio, //
    },
    stream::{
        Loader,
        Saver, //
    },
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::Arc,
    vfio::{
        self,
        migration::{
            Migration,
            State, //
        },
    },
};

/// More arcs than a request takes: the core's longest path has four.
const MAX_ARCS: usize = 8;

/// What an arc does besides changing the state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing: between running states, or between stopped ones without a transfer.
    Plain,
    /// Starts a saving session in pre-copy.
    PreCopy,
    /// Starts a saving session in stop-and-copy.
    Save,
    /// Starts a resuming session.
    Load,
    /// The pre-copy session goes on in stop-and-copy.
    StopCopy,
    /// Ends the transfer.
    End,
    /// Commits the loaded stream, then ends the transfer.
    Commit,
}

impl Step {
    /// What the arc from `from` to `to` does, if the machine has that arc.
    fn of(from: State, to: State) -> Option<Self> {
        Some(match (from, to) {
            (State::Running, State::RunningP2p)
            | (State::RunningP2p, State::Running)
            | (State::RunningP2p, State::Stop)
            | (State::Stop, State::RunningP2p)
            | (State::Running, State::Stop)
            | (State::Stop, State::Running)
            | (State::PreCopy, State::PreCopyP2p)
            | (State::PreCopyP2p, State::PreCopy) => Self::Plain,
            (State::Running, State::PreCopy) | (State::RunningP2p, State::PreCopyP2p) => {
                Self::PreCopy
            }
            (State::Stop, State::StopCopy) => Self::Save,
            (State::Stop, State::Resuming) => Self::Load,
            (State::PreCopy | State::PreCopyP2p, State::StopCopy) => Self::StopCopy,
            (State::PreCopy, State::Running)
            | (State::PreCopyP2p, State::RunningP2p)
            | (State::StopCopy, State::Stop) => Self::End,
            (State::Resuming, State::Stop) => Self::Commit,
            _ => return None,
        })
    }

    /// Which way the transfer the arc starts goes, if it starts one.
    fn starts(self) -> Option<Direction> {
        match self {
            Self::PreCopy | Self::Save => Some(Direction::Saving),
            Self::Load => Some(Direction::Resuming),
            _ => None,
        }
    }
}

/// The arcs of a request, from the state the machine was in when it was planned.
///
/// # Invariants
///
/// `len <= MAX_ARCS`; each of the first `len` arcs is one the machine has, from the state the
/// one before leads to; at most one of them starts a transfer.
struct Plan {
    front: FrontEnd,
    arcs: [(State, Step); MAX_ARCS],
    len: usize,
    /// The machine's transfer count when the plan was made.
    generation: u64,
}

impl Plan {
    /// The arcs, each as the state it leads to and what it does.
    fn arcs(&self) -> &[(State, Step)] {
        &self.arcs[..self.len]
    }

    /// Which way the transfer the plan starts goes, if it starts one.
    fn starts(&self) -> Option<Direction> {
        self.arcs().iter().find_map(|(_, step)| step.starts())
    }
}

impl RmttyVfio {
    /// Moves the machine to `new` for a request through `front`; returns what `make` made for
    /// the transfer the request started, if it started one. `make` is given the transfer's link
    /// and direction, without the device's lock held.
    ///
    /// On failure nothing changed. A transfer of the other front end fails the request with
    /// `EBUSY`, and so does another request that moved the machine while this one was prepared.
    pub(crate) fn request<F>(
        &self,
        new: State,
        front: FrontEnd,
        make: impl FnOnce(&Arc<Link>, Direction) -> Result<F>,
    ) -> Result<Option<F>, vfio::Refusal> {
        let (direction, generation, shape, bar2_size, stream) = {
            let mut state = self.device_state().lock();
            let plan = self.plan(&state.migration, new, front)?;
            let Some(direction) = plan.starts() else {
                self.walk(&mut state, &plan, None)?;
                return Ok(None);
            };
            (
                direction,
                plan.generation,
                self.shape(&state),
                self.bar2_size(&state),
                state.migration.stream(),
            )
        };
        let transfer = match direction {
            Direction::Saving => {
                Transfer::Saving(KBox::new(Saver::new(shape, stream)?, GFP_KERNEL_ACCOUNT)?)
            }
            Direction::Resuming => Transfer::Loading(KBox::new(
                Loader::new(shape, bar2_size, stream)?,
                GFP_KERNEL_ACCOUNT,
            )?),
        };
        let link = Arc::pin_init(
            pin_init!(Link {
                generation: generation + 1,
                device <- new_mutex!(Some(self.device_state().clone())),
                dev: self.dev().into(),
                refusals: self.refusals().clone(),
            }),
            GFP_KERNEL,
        )?;
        // The front end's own part, e.g. the v2 data file.
        let front_part = make(&link, direction)?;

        // What is prepared and not taken is dropped with the lock held, which is fine: a data
        // file's release is deferred (`fput()`), and the rest only frees memory.
        let mut state = self.device_state().lock();
        let plan = self.plan(&state.migration, new, front)?;
        if plan.starts() != Some(direction) || plan.generation != generation {
            return Err(self.refused(
                EBUSY,
                fmt!("migration: {front} request for {new} refused: another request moved the device"),
            ));
        }
        self.walk(&mut state, &plan, Some((transfer, link)))?;
        Ok(Some(front_part))
    }

    /// The way from the machine's state to `new` for a request through `front`.
    fn plan(&self, machine: &Machine, new: State, front: FrontEnd) -> Result<Plan, vfio::Refusal> {
        if machine.state != new
            && !matches!(machine.transfer, Transfer::None)
            && machine.owner != front
        {
            return Err(self.refused(
                EBUSY,
                fmt!(
                    "migration: {front} request for {new} refused: a {} transfer is in progress",
                    machine.owner
                ),
            ));
        }
        let mut plan = Plan {
            front,
            arcs: [(State::Error, Step::Plain); MAX_ARCS],
            len: 0,
            generation: machine.generation,
        };
        let mut cur = machine.state;
        while cur != new {
            let refused = |why| {
                self.refused(
                    EINVAL,
                    fmt!("migration: {front} request for {new} refused in {cur}: {why}"),
                )
            };
            let next = <Self as Migration>::FEATURES
                .next(cur, new)
                .map_err(|_| refused("the protocol has no way there"))?;
            let step = Step::of(cur, next).ok_or_else(|| refused("the device has no such arc"))?;
            // Neither can happen with the core's arcs.
            if plan.len == MAX_ARCS || (step.starts().is_some() && plan.starts().is_some()) {
                return Err(refused("the way is longer than the core's"));
            }
            // INVARIANT: An arc of the machine from `cur`, within the bound, and the only one
            // that starts a transfer.
            plan.arcs[plan.len] = (next, step);
            plan.len += 1;
            cur = next;
        }
        Ok(plan)
    }

    /// Takes the arcs of `plan`, which was made from the machine's current state and
    /// transfer; `prepared` is the transfer and link of the arc that starts one, if the plan has
    /// one. Only a commit can fail, and only as the first arc: then nothing changed.
    fn walk(
        &self,
        state: &mut DeviceState,
        plan: &Plan,
        mut prepared: Option<(Transfer, Arc<Link>)>,
    ) -> Result<(), vfio::Refusal> {
        if plan.starts().is_some() != prepared.is_some() {
            return Err(EINVAL.into());
        }
        for &(to, step) in plan.arcs() {
            if step == Step::Commit {
                self.commit(state)?;
            }
            // Before the arc's work: an access that saw the device running ends before the
            // arc takes the UART's state (it holds the UART's lock meanwhile).
            self.set_running(runs(to));
            let machine = &mut state.migration;
            match step {
                Step::Plain => {}
                Step::PreCopy | Step::Save | Step::Load => {
                    // The plan's one arc that starts a transfer, checked above.
                    if let Some((transfer, link)) = prepared.take() {
                        machine.end_transfer();
                        // INVARIANT: The transfer of the state the arc leads to, with its link.
                        machine.generation = link.generation;
                        machine.transfer = transfer;
                        machine.link = Some(link);
                        machine.owner = plan.front;
                    }
                    if step == Step::Save {
                        self.stop_copy(machine);
                    }
                }
                Step::StopCopy => self.stop_copy(machine),
                Step::End | Step::Commit => machine.end_transfer(),
            }
            machine.state = to;
        }
        Ok(())
    }

    /// Begins stop-and-copy of the machine's saving session: the stream ends with the config
    /// space and UART as they are now.
    fn stop_copy(&self, machine: &mut Machine) {
        let tail = self.tail();
        if let Transfer::Saving(saver) = &mut machine.transfer {
            saver.stop_copy(tail);
        }
    }
}
