// Stand-in for the CUDA runtime header when a .cu file is compiled by the host emulator
// (see emu.h, which build.py force-includes before anything else).
#pragma once
#include "emu.h"
