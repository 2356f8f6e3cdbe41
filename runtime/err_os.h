/* Wrapping operating-system errors into pn_err without losing errno. */
#ifndef PN_RUNTIME_ERR_OS_H
#define PN_RUNTIME_ERR_OS_H

#include <errno.h>

#include "peernet/error.h"

/* errnum > 0 (an errno value); returns the pn_err that wraps it. ENOMEM
 * becomes PN_ENOMEM so callers can test one code for allocation failure. */
static inline pn_err pn__err_os(int errnum) {
  if (errnum == ENOMEM) {
    return PN_ENOMEM;
  }
  return (pn_err)(PN_EOS_BASE - (errnum > 0 ? errnum : EIO));
}

#endif
