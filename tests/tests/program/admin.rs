use ovpp_tests::*;
