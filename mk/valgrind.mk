# mk/valgrind.mk: integration suites with prakatd under valgrind memcheck.  Included by the Makefile.
#
#   make check-valgrind   builds $(BUILD)/ and runs `tests/run-all.sh valgrind:$(BUILD)`: the suites in
#                         VALGRIND_TESTS (default: the list in tests/run-all.sh) with PRAKAT_VALGRIND=1, so
#                         tests/integration/harness.py starts prakatd under valgrind (definite leaks and
#                         every memory error fail the suite; tests/valgrind.supp holds the suppressions).
#
# The whole integration suite under valgrind would take most of an hour, so only a subset runs.

.PHONY: check-valgrind
check-valgrind: deps
	@$(MAKE) --no-print-directory all
	@PRAKAT_VALGRIND_TESTS="$(VALGRIND_TESTS)" sh tests/run-all.sh valgrind:$(BUILD)
