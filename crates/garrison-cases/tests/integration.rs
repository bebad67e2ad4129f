//! garrison-cases: every transition and error path, the policies, and properties that must hold
//! for any sequence of actions.

mod suite;
