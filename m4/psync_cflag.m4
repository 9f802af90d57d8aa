dnl PSYNC_CHECK_CFLAG(FLAG, ACTION-IF-OK)
dnl Adds nothing itself: runs ACTION-IF-OK when the C compiler accepts FLAG
dnl with warnings as errors.
AC_DEFUN([PSYNC_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([psync_var], [psync_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [psync_var], [
    psync_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
      [AS_VAR_SET([psync_var], [yes])], [AS_VAR_SET([psync_var], [no])])
    CFLAGS=$psync_save_CFLAGS])
  AS_VAR_IF([psync_var], [yes], [$2])
  AS_VAR_POPDEF([psync_var])
])
