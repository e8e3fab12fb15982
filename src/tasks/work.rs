//! The task's work: what `await asyncio.sleep(1)` is in the FastAPI original.
//!
//! This is the one function to replace with your own work. It gets the event
//! (add fields to [`TaskEvent`] for your inputs) and the attempt number, and
//! returns `Err` with a message to fail the attempt: the record then says
//! `failed` with that message, and Lambda retries the event. Everything around
//! it (the claim, the lease, duplicate deliveries, the record) is the
//! worker's.

use std::time::Duration;

use super::TaskEvent;

/// Waits `delay_ms`; fails the first `fail_attempts` attempts, and panics in
/// the first `panic_attempts`, on purpose.
pub async fn perform(event: &TaskEvent, attempt: u32) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(event.delay_ms)).await;
    if attempt <= event.panic_attempts {
        panic!(
            "simulated panic (panic_attempts = {})",
            event.panic_attempts
        );
    }
    if attempt <= event.fail_attempts {
        return Err(format!(
            "simulated failure (fail_attempts = {})",
            event.fail_attempts
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_stand_in_work_fails_exactly_its_first_fail_attempts_attempts() {
        let event = TaskEvent {
            task_id: "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c".to_owned(),
            delay_ms: 0,
            fail_attempts: 2,
            panic_attempts: 0,
        };
        for attempt in 1..=2 {
            assert_eq!(
                perform(&event, attempt).await,
                Err("simulated failure (fail_attempts = 2)".to_owned())
            );
        }
        assert_eq!(perform(&event, 3).await, Ok(()));
    }
}
