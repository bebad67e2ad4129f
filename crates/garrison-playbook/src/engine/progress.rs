//! Moving the run forward: which steps are ready, skipped or waiting, and parallel joins.

use serde_json::Value as Json;

use crate::model::*;

use super::{Cx, StepStatus};

enum Readiness {
    Ready,
    Skip(&'static str),
    Wait,
}

impl Cx<'_> {
    pub(super) fn progress(&mut self) {
        let mut rounds = 0;
        loop {
            rounds += 1;
            if self.st.status != RunStatus::Running || rounds > 10_000 {
                return;
            }
            let mut changed = false;
            for i in 0..self.pb.steps.len() {
                if self.st.status != RunStatus::Running {
                    return;
                }
                match self.st.steps[i].status {
                    StepStatus::Pending => match self.readiness(i) {
                        Readiness::Ready => {
                            self.start_step(i);
                            changed = true;
                        }
                        Readiness::Skip(why) => {
                            self.skip(i, why);
                            changed = true;
                        }
                        Readiness::Wait => {}
                    },
                    StepStatus::Running => {
                        if let StepKind::Parallel { steps, join } = &self.pb.steps[i].kind {
                            if self.check_parallel(i, steps, *join) {
                                changed = true;
                            }
                        }
                    }
                    _ => {}
                }
            }
            if !changed {
                break;
            }
        }
        if self.st.status == RunStatus::Running
            && self.st.steps.iter().all(|s| s.status.is_terminal())
        {
            self.finish_run(RunStatus::Succeeded, None);
        }
    }

    fn satisfied(&self, j: usize) -> bool {
        match self.st.steps[j].status {
            StepStatus::Succeeded => true,
            StepStatus::Failed => self.pb.steps[j].on_error == OnError::Continue,
            _ => false,
        }
    }

    fn readiness(&self, i: usize) -> Readiness {
        let g = &self.pb.graph;
        if let Some(p) = g.parent[i] {
            match self.st.steps[p].status {
                StepStatus::Pending => return Readiness::Wait,
                StepStatus::Running => {}
                _ => return Readiness::Skip("its parallel step ended"),
            }
        }
        let routers = &g.routers[i];
        if !routers.is_empty() && !self.st.steps[i].activated {
            if routers
                .iter()
                .all(|&r| self.st.steps[r].status.is_terminal())
            {
                return Readiness::Skip("not chosen");
            }
            return Readiness::Wait;
        }
        let deps = &g.deps[i];
        if deps.is_empty() {
            return Readiness::Ready;
        }
        match self.pb.steps[i].join {
            Join::All => {
                let mut all_done = true;
                for &d in deps {
                    let s = self.st.steps[d].status;
                    if !s.is_terminal() {
                        all_done = false;
                    } else if !self.satisfied(d) {
                        return Readiness::Skip("a dependency did not complete");
                    }
                }
                if all_done {
                    Readiness::Ready
                } else {
                    Readiness::Wait
                }
            }
            Join::Any => {
                if deps.iter().any(|&d| self.satisfied(d)) {
                    Readiness::Ready
                } else if deps.iter().all(|&d| self.st.steps[d].status.is_terminal()) {
                    Readiness::Skip("no dependency completed")
                } else {
                    Readiness::Wait
                }
            }
        }
    }

    pub(super) fn skip(&mut self, i: usize, why: &str) {
        let s = &mut self.st.steps[i];
        s.status = StepStatus::Skipped;
        s.finished_at = Some(self.now);
        self.log(i, format!("skipped: {why}"));
    }

    fn check_parallel(&mut self, i: usize, members: &[String], join: Join) -> bool {
        let idx: Vec<usize> = members
            .iter()
            .filter_map(|m| self.pb.step_index(m))
            .collect();
        let output = |cx: &Self| {
            let mut m = serde_json::Map::new();
            for &j in &idx {
                m.insert(
                    cx.st.steps[j].id.clone(),
                    cx.st.steps[j].output.clone().unwrap_or(Json::Null),
                );
            }
            Json::Object(m)
        };
        match join {
            Join::All => {
                if idx.iter().all(|&j| self.st.steps[j].status.is_terminal()) {
                    let out = output(self);
                    self.succeed_step(i, out);
                    return true;
                }
            }
            Join::Any => {
                if let Some(&winner) = idx.iter().find(|&&j| self.satisfied(j)) {
                    for &j in &idx {
                        if !self.st.steps[j].status.is_terminal() {
                            self.stop_step(j);
                        }
                    }
                    let out = output(self);
                    let winner_id = self.st.steps[winner].id.clone();
                    self.log(i, format!("first to complete: {winner_id}"));
                    self.succeed_step(i, out);
                    return true;
                }
                if idx.iter().all(|&j| self.st.steps[j].status.is_terminal()) {
                    self.fail_step(i, "no member of the parallel step completed".into());
                    return true;
                }
            }
        }
        false
    }
}
