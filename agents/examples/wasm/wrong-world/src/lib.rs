//! Exports only `init`: the host must refuse it at load.

wit_bindgen::generate!({ path: "wit", world: "wrong" });

struct Wrong;

impl Guest for Wrong {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }
}

export!(Wrong);
