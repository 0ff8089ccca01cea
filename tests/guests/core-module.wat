;; A plain core module: WebAssembly, but no policy ABI at all.
(module
  (memory (export "memory") 1)
  (func (export "validate") (param i32 i32) (result i32) i32.const 1))
