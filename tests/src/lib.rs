//! End-to-end tests of the auth workspace against real servers on
//! 127.0.0.1; the tests are in `tests/tests/`.
