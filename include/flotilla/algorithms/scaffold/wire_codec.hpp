#pragma once
// How SCAFFOLD's parameters cross the wire: as plain parameters, checked on the way in to be a
// model followed by its control variate. Include it where SCAFFOLD runs over TCP.

#include "flotilla/algorithms/scaffold/parameters.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/wire/codec.hpp"

namespace flotilla {

template <std::floating_point Scalar>
struct wire_codec<scaffold_parameters<Scalar>> {
  static void write(wire_writer& out, const scaffold_parameters<Scalar>& p) {
    wire_codec<parameters<Scalar>>::write(out, p);
  }
  static scaffold_parameters<Scalar> read(wire_reader& in) {
    try {
      return scaffold_parameters<Scalar>::adopt(wire_codec<parameters<Scalar>>::read(in));
    } catch (const layout_error& error) {
      throw decode_error(error.what());
    }
  }
};

}  // namespace flotilla
