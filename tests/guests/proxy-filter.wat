;; A proxy-wasm filter: the right format for the proxy host, the wrong ABI for admission.
(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 0))
