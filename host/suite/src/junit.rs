//! Suite reports as JUnit XML, for CI systems.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::SuiteReport;

/// The JUnit XML of `reports`: one test suite per suite file, one test case per case.
///
/// # Errors
/// When quick-junit cannot render the report.
pub fn junit(reports: &[SuiteReport]) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("palisade");
    for suite in reports {
        let name = suite.path.display().to_string();
        let mut junit_suite = TestSuite::new(name.as_str());
        for case in &suite.cases {
            let status = match &case.failure {
                None if case.skipped => TestCaseStatus::skipped(),
                None => TestCaseStatus::success(),
                Some(why) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(why.as_str());
                    status
                }
            };
            let mut test_case = TestCase::new(case.name.as_str(), status);
            test_case.set_time(case.time);
            junit_suite.add_test_case(test_case);
        }
        report.add_test_suite(junit_suite);
    }
    report.to_string()
}
