#pragma once
// A stand-in so that the wrong include above names a real layer.
