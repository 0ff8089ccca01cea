;; A component exporting a newer version of the admission interface than this host supports.
(component
  (instance $policy)
  (export "palisade:admission/policy@9.0.0" (instance $policy)))
