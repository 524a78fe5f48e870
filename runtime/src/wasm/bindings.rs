//! Host bindings generated from the agent world (`agents/sdk/wit/agent.wit`).

wasmtime::component::bindgen!({
    path: "../agents/sdk/wit",
    world: "agent",
    ownership: Borrowing { duplicate_if_necessary: true },
});
