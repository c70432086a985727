/**
 * Types for the part of the `stun` package (CommonJS, no declarations of its own) that
 * src/stun/codec.ts uses: the RFC 5389 message codec and its constants.
 */
declare module "stun" {
  export interface StunMessage {
    readonly type: number;
    readonly transactionId: Uint8Array;
    addXorAddress(address: string, port: number): unknown;
    addFingerprint(): unknown;
    getXorAddress(): { address: string; port: number; family: string } | undefined;
    getAttribute(type: number): unknown;
  }
  const stun: {
    createMessage(type: number, transactionId?: Uint8Array): StunMessage;
    encode(m: StunMessage): Uint8Array;
    decode(b: Uint8Array): StunMessage;
    validateFingerprint(m: StunMessage): boolean;
    constants: Record<string, number>;
  };
  export default stun;
}
