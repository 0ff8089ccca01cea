;; A component that claims the admission interface but exports none of its functions.
(component
  (instance $policy)
  (export "palisade:admission/policy@0.1.0" (instance $policy)))
