"""Memory prefetch hints for compiled loops over random sample ids.

An ingest touches one record per sample at random ids in a store much larger than the caches, so
every record is a cache miss; so does a greedy optimizer's gain, which reads a candidate's row.
Asking for the next ones early (``llvm.prefetch``) keeps several misses in flight instead of
waiting for each in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.base import BaseContext
from numba.core.typing import Context, Signature
from numba.extending import intrinsic

# How many samples ahead a loop asks for a record: enough misses in flight to hide the latency,
# few enough that the lines are still cached when the loop gets there.
AHEAD = 16

# numba's intrinsic protocol: typing gives a signature and the code generator of a call. Compiled
# code calls an intrinsic without the typing context, so the typing's parameters are left open.
_Codegen = Callable[[BaseContext, ir.IRBuilder, Signature, Sequence[ir.Value]], ir.Value]
_Typing = Callable[..., tuple[Signature, _Codegen]]


def _hint(rw: int) -> _Typing:
    def hint(typingctx: Context, array: types.Array, index: types.Integer) -> tuple[Signature, _Codegen]:  # noqa: ARG001 (numba's intrinsic signature)
        def codegen(
            context: BaseContext, builder: ir.IRBuilder, signature: Signature, args: Sequence[ir.Value]
        ) -> ir.Value:  # noqa: ARG001
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
            # locality = 3 (keep it in every cache level), data cache.
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(rw), i32(3), i32(1)])
            return context.get_dummy_value()

        return types.void(array, index), codegen

    hint.__name__ = f"prefetch_rw{rw}"
    return hint


# Hints that ``array[index]`` will be read and written (``prefetch``) or only read
# (``prefetch_read``) soon: no bounds check, no effect on values.
prefetch = intrinsic(_hint(1))
prefetch_read = intrinsic(_hint(0))
