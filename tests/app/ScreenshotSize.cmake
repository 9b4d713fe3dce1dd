# Runs the app with --screenshot OUT and checks the PNG's width and height (its IHDR, bytes 16-23):
# --size must size what the screenshot shows, also when that is a results dialog.
# -DAPP=... -DSUMMARY=... -DOUT=... -DWIDTH=... -DHEIGHT=...
file(REMOVE "${OUT}")
execute_process(COMMAND "${APP}" --sweep-summary "${SUMMARY}" --size ${WIDTH}x${HEIGHT} --screenshot "${OUT}"
                        --quit-after 500
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "statescope exited with ${rc}: ${err}")
endif()
if(NOT EXISTS "${OUT}")
  message(FATAL_ERROR "no screenshot at ${OUT}: ${err}")
endif()
file(READ "${OUT}" header OFFSET 16 LIMIT 8 HEX)
string(SUBSTRING "${header}" 0 8 w)
string(SUBSTRING "${header}" 8 8 h)
math(EXPR w "0x${w}")
math(EXPR h "0x${h}")
if(NOT w EQUAL WIDTH OR NOT h EQUAL HEIGHT)
  message(FATAL_ERROR "${OUT}: expected ${WIDTH}x${HEIGHT}, got ${w}x${h}")
endif()
message(STATUS "${OUT}: ${w}x${h}")
