/* Prints the size and field offsets of every XLA FFI C API struct that src/ffi/xla/c_api.rs
 * mirrors, as "name value" lines; tests/python.rs compiles this against the installed jaxlib's
 * header and compares each line with the Rust mirror. */
#include <stddef.h>
#include <stdio.h>
#include "xla/ffi/api/c_api.h"

#define SIZE(t) printf("sizeof(%s) %zu\n", #t, sizeof(t))
#define OFF(t, f) printf("%s.%s %zu\n", #t, #f, offsetof(t, f))

int main(void) {
    SIZE(XLA_FFI_Extension_Base);
    OFF(XLA_FFI_Extension_Base, type);
    OFF(XLA_FFI_Extension_Base, next);
    SIZE(XLA_FFI_Api_Version);
    OFF(XLA_FFI_Api_Version, major_version);
    OFF(XLA_FFI_Api_Version, minor_version);
    SIZE(XLA_FFI_Error_Create_Args);
    OFF(XLA_FFI_Error_Create_Args, message);
    OFF(XLA_FFI_Error_Create_Args, errc);
    SIZE(XLA_FFI_Buffer);
    OFF(XLA_FFI_Buffer, dtype);
    OFF(XLA_FFI_Buffer, data);
    OFF(XLA_FFI_Buffer, rank);
    OFF(XLA_FFI_Buffer, dims);
    SIZE(XLA_FFI_Args);
    OFF(XLA_FFI_Args, size);
    OFF(XLA_FFI_Args, types);
    OFF(XLA_FFI_Args, args);
    SIZE(XLA_FFI_Rets);
    OFF(XLA_FFI_Rets, rets);
    SIZE(XLA_FFI_Attrs);
    OFF(XLA_FFI_Attrs, attrs);
    SIZE(XLA_FFI_CallFrame);
    OFF(XLA_FFI_CallFrame, api);
    OFF(XLA_FFI_CallFrame, stage);
    OFF(XLA_FFI_CallFrame, args);
    OFF(XLA_FFI_CallFrame, rets);
    OFF(XLA_FFI_CallFrame, attrs);
    OFF(XLA_FFI_CallFrame, future);
    SIZE(XLA_FFI_Metadata);
    OFF(XLA_FFI_Metadata, api_version);
    OFF(XLA_FFI_Metadata, traits);
    OFF(XLA_FFI_Metadata, state_type_id);
    SIZE(XLA_FFI_Metadata_Extension);
    OFF(XLA_FFI_Metadata_Extension, metadata);
    OFF(XLA_FFI_Api, api_version);
    OFF(XLA_FFI_Api, internal_api);
    OFF(XLA_FFI_Api, XLA_FFI_Error_Create);
    OFF(XLA_FFI_Api, XLA_FFI_Stream_Get);
    OFF(XLA_FFI_Api, XLA_FFI_DeviceOrdinal_Get);
    SIZE(XLA_FFI_Api);
    SIZE(XLA_FFI_Stream_Get_Args);
    OFF(XLA_FFI_Stream_Get_Args, ctx);
    OFF(XLA_FFI_Stream_Get_Args, stream);
    SIZE(XLA_FFI_DeviceOrdinal_Get_Args);
    OFF(XLA_FFI_DeviceOrdinal_Get_Args, ctx);
    OFF(XLA_FFI_DeviceOrdinal_Get_Args, device_ordinal);
    /* Enum values the handlers rely on. */
    printf("XLA_FFI_API_MAJOR %d\nXLA_FFI_API_MINOR %d\n", XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR);
    printf("Metadata %d\n", (int)XLA_FFI_Extension_Metadata);
    printf("EXECUTE %d\n", (int)XLA_FFI_ExecutionStage_EXECUTE);
    printf("BUFFER %d\n", (int)XLA_FFI_ArgType_BUFFER);
    printf("S32 %d\nU8 %d\nF32 %d\nF64 %d\n", (int)XLA_FFI_DataType_S32, (int)XLA_FFI_DataType_U8,
           (int)XLA_FFI_DataType_F32, (int)XLA_FFI_DataType_F64);
    printf("INVALID_ARGUMENT %d\nFAILED_PRECONDITION %d\nUNIMPLEMENTED %d\nINTERNAL %d\n",
           (int)XLA_FFI_Error_Code_INVALID_ARGUMENT, (int)XLA_FFI_Error_Code_FAILED_PRECONDITION,
           (int)XLA_FFI_Error_Code_UNIMPLEMENTED, (int)XLA_FFI_Error_Code_INTERNAL);
    return 0;
}
